export * from './codec.js';
export { SocksServer } from './server.js';
export type { SocksAuth, SocksConnect, SocksListenAddress, SocksServerOptions } from './server.js';
