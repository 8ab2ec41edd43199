export * from './auth.js';
export * from './uri.js';
export * from './certs.js';
export * from './ws-transport.js';
export * from './dialer.js';
export * from './listener.js';
