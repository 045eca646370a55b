// text.js: making server text safe to show, as the terminal client does.
// The view puts the result in textContent only; this removes what text
// could still do there: control characters and bidi overrides that would
// disguise a message.

// C0 but newline and tab, DEL, C1; the bidi embeddings, overrides and
// isolates (U+202A–U+202E, U+2066–U+2069).
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** safeText returns text with every unsafe character replaced by U+FFFD; tabs become spaces. */
export function safeText(text) {
  return String(text).replace(UNSAFE, "\ufffd").replace(/\t/g, "    ");
}

/** safeLine is safeText for one-line places (names): newlines become U+FFFD too. */
export function safeLine(text) {
  return safeText(text).replace(/\n/g, "\ufffd");
}
