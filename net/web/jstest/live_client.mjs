// The page's protocol client (client.js), without any DOM, against a real
// server over WebSocket. Run by TestJSClientLive (web_test.go), which
// starts the server and passes LIBRECORD_WS_URL, LIBRECORD_FP and
// LIBRECORD_PASSWORD; node needs --experimental-websocket (node 20).
import test from "node:test";
import assert from "node:assert/strict";
import "./setup.js";

const { Client, ServerError } = await import("../static/client.js");
const url = process.env.LIBRECORD_WS_URL;
// alice's password; the passwd step of the first test changes it.
let password = process.env.LIBRECORD_PASSWORD;

function until(client, type, pred, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting for " + type)), ms);
    client.on(type, (ev) => {
      if (pred(ev)) { clearTimeout(timer); resolve(ev); }
    });
  });
}

test("login, send, long-poll, resume after a drop, outbox once, bye", async () => {
  let logins = 0;
  const fps = [];
  const client = new Client({ url, checkIdentity: async (key, fp) => { fps.push(fp); return true; } });
  client.on("login", () => logins++);
  const seen = [];
  client.on("messages", (ev) => { for (const m of ev.messages) seen.push(m); });

  const info = await client.login(password);
  assert.equal(info.pseudo, "alice");
  assert.deepEqual(fps, [process.env.LIBRECORD_FP]);
  client.open("general");

  client.send("from node 1");
  await until(client, "outbox", (i) => i.text === "from node 1" && i.state === "stored");
  await until(client, "messages", () => seen.some((m) => m.text === "from node 1"));

  // Drop the connection under the client, and type while it is down.
  const online = until(client, "status", (s) => s.state === "online");
  client.conn.ws.close();
  client.send("typed during the drop");
  await online;
  await until(client, "outbox", (i) => i.text === "typed during the drop" && i.state === "stored");
  await until(client, "messages", () => seen.some((m) => m.text === "typed during the drop"));
  assert.equal(logins, 1, "the session was resumed, not logged in again");

  // Each line once, in order.
  const texts = seen.filter((m) => !m.system).map((m) => m.text);
  assert.deepEqual([...new Set(texts)], ["from node 1", "typed during the drop"]);
  const r = await client.request({ op: "fetch", salon: "general", limit: 10 });
  assert.deepEqual(r.messages.filter((m) => !m.system).map((m) => m.text), ["from node 1", "typed during the drop"]);

  assert.deepEqual(await client.who(), ["alice"]);

  // passwd (PROTOCOL.md 3.8): a wrong current password is auth and the
  // session goes on; the right one gets the new password.
  await assert.rejects(client.passwd("not the password"), (e) => e instanceof ServerError && e.code === "auth");
  const fresh = await client.passwd(password);
  assert.ok(fresh.length >= 12 && fresh !== password);
  password = fresh;
  assert.deepEqual(await client.who(), ["alice"]);

  const out = until(client, "status", (s) => s.state === "loggedout");
  await client.logout();
  await out;
  assert.equal(client.channel, null);
});

test("a wrong password is auth, and the connection stays usable", async () => {
  const client = new Client({ url, checkIdentity: async () => true });
  await assert.rejects(client.login("not the password"), (e) => e instanceof ServerError && e.code === "auth");
  const info = await client.login(password);
  assert.equal(info.pseudo, "alice");
  await client.logout();
});

test("an identity refused sends nothing", async () => {
  const client = new Client({ url, checkIdentity: async () => false });
  await assert.rejects(client.login(password), (e) => e.name === "Error" && /SHA256:/.test(e.message));
  assert.equal(client.channel, null);
});
