// Loads the vendored tweetnacl (a classic script in the page) as the page
// does: it sets globalThis.nacl. Import this before the page's modules.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const src = readFileSync(new URL("../static/vendor/nacl-fast.min.js", import.meta.url), "utf8");
const mod = { exports: {} };
new Function("module", "exports", "require", src)(mod, mod.exports, createRequire(import.meta.url));
globalThis.nacl = mod.exports;

export const root = new URL("../../../", import.meta.url);

/** vector reads a key: value file of crypto/testdata (hex values as bytes). */
export function vector(path) {
  const out = {};
  for (const line of readFileSync(new URL(path, root), "utf8").split("\n")) {
    const i = line.indexOf(": ");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 2);
  }
  return out;
}

export function unhex(s) {
  return Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
}
