// The QR encoder of qrcode-terminal (0.12, bundled into dist/ like every other dependency): a phone
// can scan a share link off the server's terminal instead of someone copying a secret by hand. It
// is small and has no dependencies. We use its encoder only: its printer (lib/main.js) holds octal
// escapes that an ESM bundle cannot contain, so the half-block rendering below is our own.
import QRCode from 'qrcode-terminal/vendor/QRCode/index.js';

/** Error correction level L (the encoder's code 1): the most data per module; terminals are clean. */
const LEVEL_L = 1;
const QUIET_MODULES = 2;

/** The QR code of `text`: a square of modules, true for dark, row by row (no quiet zone). */
export function qrMatrix(text: string): boolean[][] {
  const qr = new QRCode(-1, LEVEL_L);
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  return Array.from({ length: n }, (_, r) => Array.from({ length: n }, (_, c) => qr.isDark(r, c)));
}

/** The QR code of `text` as terminal text: two module rows per line, dark on light, with a quiet zone. */
export function qrText(text: string): string {
  const m = qrMatrix(text);
  const n = m.length;
  const dark = (r: number, c: number): boolean => r >= 0 && c >= 0 && r < n && c < n && (m[r] as boolean[])[c] === true;
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

/** Quiet zone of the SVG rendering: the 4 modules ISO/IEC 18004 asks for (a page is not a clean terminal). */
const SVG_QUIET_MODULES = 4;

/**
 * The QR code of `text` as an inline SVG element: one path of dark squares on a white square, with
 * the quiet zone, `size` CSS pixels wide. No script, no external reference: a page under a strict
 * CSP shows it.
 */
export function qrSvg(text: string, size: number, label: string): string {
  const m = qrMatrix(text);
  const q = SVG_QUIET_MODULES;
  const w = m.length + 2 * q;
  let d = '';
  m.forEach((row, r) => row.forEach((on, c) => {
    if (on) d += `M${c + q} ${r + q}h1v1h-1z`;
  }));
  const esc = label.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${esc}" width="${size}" height="${size}" viewBox="0 0 ${w} ${w}" shape-rendering="crispEdges"><rect width="${w}" height="${w}" fill="#fff"/><path fill="#000" d="${d}"/></svg>`;
}
