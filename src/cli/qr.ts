// The QR encoder of qrcode-terminal (0.12, bundled into dist/ like every other dependency): a phone
// can scan a share link off the server's terminal instead of someone copying a secret by hand. It
// is small and has no dependencies. We use its encoder only: its printer (lib/main.js) holds octal
// escapes that an ESM bundle cannot contain, so the half-block rendering below is our own.
import QRCode from 'qrcode-terminal/vendor/QRCode/index.js';

/** Error correction level L (the encoder's code 1): the most data per module; terminals are clean. */
const LEVEL_L = 1;
const QUIET_MODULES = 2;

/** The QR code of `text` as terminal text: two module rows per line, dark on light, with a quiet zone. */
export function qrText(text: string): string {
  const qr = new QRCode(-1, LEVEL_L);
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const dark = (r: number, c: number): boolean => r >= 0 && c >= 0 && r < n && c < n && qr.isDark(r, c);
  let out = '';
  for (let r = -QUIET_MODULES; r < n + QUIET_MODULES; r += 2) {
    for (let c = -QUIET_MODULES; c < n + QUIET_MODULES; c++) {
      const top = dark(r, c);
      const bottom = dark(r + 1, c);
      // Light is drawn (full block), dark is blank: reads right on a dark terminal background.
      out += top ? (bottom ? ' ' : '\u2584') : bottom ? '\u2580' : '\u2588';
    }
    out += '\n';
  }
  return out;
}
