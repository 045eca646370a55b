import test from "node:test";
import assert from "node:assert/strict";
import "./setup.js";
import { safeText, safeLine } from "../static/text.js";

const { mentions } = await import("../static/client.js");

test("controls and bidi overrides become U+FFFD, newlines stay in messages", () => {
  assert.equal(safeText("a\u001b[31mb\u009bc\u007f"), "a\ufffd[31mb\ufffdc\ufffd");
  assert.equal(safeText("\u202egnp.exe \u2066x\u2069 \u202a\u202b\u202c\u202d"), "\ufffdgnp.exe \ufffdx\ufffd \ufffd\ufffd\ufffd\ufffd");
  assert.equal(safeText("line\nnext\ttab\r"), "line\nnext    tab\ufffd");
  assert.equal(safeText("<img src=x onerror=alert(1)>"), "<img src=x onerror=alert(1)>");
  assert.equal(safeLine("a\nb"), "a\ufffdb");
  assert.equal(safeText("é 👍 \u200f"), "é 👍 \u200f"); // ordinary text (and marks) untouched
});

test("mentions: the pseudo as a word, any case, with or without @", () => {
  assert.ok(mentions("hey alice, look", "alice"));
  assert.ok(mentions("@Alice?", "alice"));
  assert.ok(mentions("ALICE", "alice"));
  assert.ok(!mentions("malice aforethought", "alice"));
  assert.ok(!mentions("alice_b is here", "alice"));
  assert.ok(!mentions("anything", ""));
});
