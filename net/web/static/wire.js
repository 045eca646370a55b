// wire.js: the byte stream of PROTOCOL.md section 1 (frames of base64url
// portions), for the browser. No DOM, no crypto: bytes in, bytes out.

export const PORTION_SIZE = 256;
export const MAX_LINE_BYTES = 300;
export const DEFAULT_MAX_PORTIONS = 1024;
const END = "(ENDMESS)";

const URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) URL_VALUE[URL_ALPHABET.charCodeAt(i)] = i;

function encode(bytes, alphabet) {
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63];
  }
  return out;
}

/** base64url without padding (Go base64.RawURLEncoding). */
export function b64url(bytes) { return encode(bytes, URL_ALPHABET); }

/** Standard base64 without padding (fingerprints, as OpenSSH prints them). */
export function b64std(bytes) { return encode(bytes, STD_ALPHABET); }

/**
 * Strict base64url decoding: no padding, no foreign character, a length
 * that is not 1 mod 4, zero unused bits. Returns null when invalid.
 */
export function unb64url(text) {
  if (text.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((text.length * 6) / 8));
  let acc = 0, bits = 0, o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? URL_VALUE[c] : -1;
    if (v < 0) return null;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

/** encodeFrame returns the lines of one frame carrying payload, line ends included. */
export function encodeFrame(payload) {
  if (payload.length === 0) throw new Error("empty payload");
  const text = b64url(payload);
  let out = "";
  for (let i = 0, n = 1; i < text.length; i += PORTION_SIZE, n++) {
    out += "MESS" + n + "//" + text.slice(i, i + PORTION_SIZE) + "\\\\MESS" + n + "\n";
  }
  return out + END + "\n";
}

/** A broken frame; fatal means the connection must close. */
export class FrameError extends Error {
  constructor(message, fatal = false) {
    super(message);
    this.fatal = fatal;
  }
}

function isB64urlChar(c) { return c < 128 && URL_VALUE[c] >= 0; }

/**
 * FrameReader reassembles frames from text pushed in arbitrary pieces,
 * with the checks and defect messages of docs/protocol.md. push returns a
 * list of items: {payload, portions} or {error: FrameError}.
 */
export class FrameReader {
  constructor(maxPortions = DEFAULT_MAX_PORTIONS) {
    this.maxPortions = maxPortions;
    this.partial = "";
    this.next = 1;
    this.lastShort = 0;
    this.skipping = false;
    this.chunks = [];
    this.fatal = null;
  }

  push(text) {
    const items = [];
    if (this.fatal) return [{ error: this.fatal }];
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      if (nl < 0) {
        this.partial += text.slice(start);
        if (this.partial.length > MAX_LINE_BYTES + 2) items.push({ error: this.tooLong() });
        return items;
      }
      let line = this.partial + text.slice(start, nl);
      this.partial = "";
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line.length > MAX_LINE_BYTES) {
        items.push({ error: this.tooLong() });
        return items;
      }
      const item = this.line(line);
      if (item) items.push(item);
    }
  }

  tooLong() {
    this.partial = "";
    this.fatal = new FrameError("line longer than " + MAX_LINE_BYTES + " bytes", true);
    return this.fatal;
  }

  reset() {
    this.next = 1;
    this.lastShort = 0;
  }

  line(line) {
    if (line.length === 0) return null;
    if (this.skipping) {
      if (line === END) this.skipping = false;
      return null;
    }
    if (line === END) {
      if (this.next === 1) return { error: new FrameError("(ENDMESS) with no portion before it") };
      const portions = this.next - 1;
      let size = 0;
      for (const c of this.chunks) size += c.length;
      const payload = new Uint8Array(size);
      let o = 0;
      for (const c of this.chunks) { payload.set(c, o); o += c.length; }
      this.chunks = [];
      this.reset();
      return { payload, portions };
    }
    const err = this.portion(line);
    if (err) {
      this.reset();
      this.chunks = [];
      this.skipping = true;
      return { error: err };
    }
    return null;
  }

  portion(line) {
    const stray = new FrameError("line is neither a portion nor (ENDMESS)");
    if (!line.startsWith("MESS")) return stray;
    let i = 4;
    while (i < line.length && line[i] >= "0" && line[i] <= "9") i++;
    const digits = line.slice(4, i);
    if (digits.length === 0 || line.slice(i, i + 2) !== "//") return stray;
    if (digits.length > 1 && digits[0] === "0") return new FrameError("portion number with leading zero");
    const n = digits.length > 9 ? 2 ** 30 : Number(digits);
    if (n === this.next && n > this.maxPortions) return new FrameError("frame has more than " + this.maxPortions + " portions");
    if (n === 0) return new FrameError("expected portion " + this.next + ", got 0");
    if (n < this.next) return new FrameError("portion " + n + " repeated");
    if (n > this.next) return new FrameError("missing portion " + this.next);
    const rest = line.slice(i + 2);
    const j = rest.lastIndexOf("\\\\MESS");
    if (j < 0) return new FrameError("portion " + n + " has no closing tag");
    if (rest.slice(j + 6) !== digits) return new FrameError("closing tag of portion " + n + " does not match");
    const text = rest.slice(0, j);
    if (this.lastShort !== 0) return new FrameError("portion " + this.lastShort + " is shorter than 256 characters but is not the last");
    if (text.length === 0) return new FrameError("portion " + n + " is empty");
    if (text.length > PORTION_SIZE) return new FrameError("portion " + n + " is longer than 256 characters");
    for (let k = 0; k < text.length; k++) {
      if (!isB64urlChar(text.charCodeAt(k))) return new FrameError("character outside base64url in portion " + n);
    }
    const bytes = unb64url(text);
    if (!bytes) return new FrameError("portion " + n + " is not valid base64url");
    if (n === 1) this.chunks = [];
    this.chunks.push(bytes);
    if (text.length < PORTION_SIZE) this.lastShort = n;
    this.next = n + 1;
    return null;
  }
}
