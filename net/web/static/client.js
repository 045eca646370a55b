// client.js: the protocol client of the page (PROTOCOL.md 2 to 5) over a
// WebSocket: hello, login, requests matched by `re`, the long-poll of the
// open salon, the outbox with its cids, resume and relogin, bye. It knows
// nothing of the DOM: the view listens to its events and calls its
// methods. Every timing is an option so tests can shrink it.

import { FrameReader, encodeFrame, b64url } from "./wire.js";
import * as lc from "./lrcrypto.js";

export const SUBPROTOCOL = "librecord.v1";
export const STATUS_CONNECTED = "CONNECTÉ";

/** ServerError is an `error` body from the server. */
export class ServerError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/** ConnectionLost: the request's connection died before its answer. */
export class ConnectionLost extends Error {
  constructor(why) { super(why || "connection lost"); }
}

/** IdentityRefused: the server's identity key was not accepted (changed, or not trusted). */
export class IdentityRefused extends Error {}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

const DEFAULTS = {
  replyMargin: 5000, // PROTOCOL.md 5: an answer later than wait + 5 s means a dead connection
  loginTimeout: 30000,
  helloTimeout: 10000,
  freshFor: 5000, // a connection older than this and not logged in is replaced before login
  retryDelay: 1000, // between reconnect attempts, and before re-sending a rate-limited line
  reloginDelay: 7000, // after the reconnect window: the server has forgotten the session
  reloginJitter: 3000, // after unknown_session: a random delay up to this
  maxPortions: 1024,
  pageSize: 50,
};

/** randomCID is 128 random bits in base64url (22 characters). */
export function randomCID() { return b64url(lc.randomBytes(16)); }

/**
 * Conn is one WebSocket carrying the section 1 stream: it frames what is
 * sent and hands every decoded payload to onPayload.
 */
class Conn {
  constructor(url, WS, maxPortions, onPayload, onClose) {
    this.reader = new FrameReader(maxPortions);
    this.opened = Date.now();
    this.closed = false;
    this.ws = new WS(url, SUBPROTOCOL);
    this.ready = new Promise((resolve, reject) => {
      this.ws.onopen = () => resolve();
      this.ws.onerror = () => reject(new ConnectionLost("cannot reach the server"));
    });
    this.ready.catch(() => {});
    this.ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return this.close("binary message from the server");
      for (const item of this.reader.push(ev.data)) {
        if (this.closed) return;
        if (item.error) return this.close("broken frame from the server: " + item.error.message);
        onPayload(item.payload, this);
      }
    };
    this.ws.onclose = () => this.close("connection closed");
    this.onClose = onClose;
  }

  send(payload) {
    if (this.closed) throw new ConnectionLost();
    this.ws.send(encodeFrame(payload));
  }

  close(why) {
    if (this.closed) return;
    this.closed = true;
    try { this.ws.close(); } catch { /* already closing */ }
    this.onClose(this, why || "connection closed");
  }
}

/**
 * Client is one person's session with one server. Options: url (the /ws
 * address), checkIdentity(identityBytes, fingerprint) → Promise<boolean>
 * (trust on first use; false refuses), WebSocket, and the timings of
 * DEFAULTS.
 */
export class Client {
  constructor(opts) {
    this.opts = { ...DEFAULTS, ...opts };
    this.WS = opts.WebSocket || globalThis.WebSocket;
    this.listeners = {};
    this.conn = null;
    this.channel = null;
    this.keys = null;
    this.nextID = 0;
    this.waiting = new Map(); // id -> {resolve, reject, timer, conn}
    this.info = null; // what login announced
    this.password = null; // in memory only, for logging in again
    this.outbox = []; // {cid, salon, text, state: "pending"|"stored"|"failed", msg}
    this.sending = false;
    this.salon = null; // the open salon
    this.lastSeen = new Map(); // salon -> newest id seen
    this.oldest = new Map(); // salon -> oldest id shown
    this.pollGen = 0;
    this.recovering = null;
    this.stopped = false;
  }

  on(type, fn) { (this.listeners[type] ||= []).push(fn); }
  emit(type, data) { for (const fn of this.listeners[type] || []) fn(data); }

  // ---- connections ----

  newConn() {
    return new Conn(this.opts.url, this.WS, this.opts.maxPortions,
      (p, c) => this.onPayload(p, c), (c, why) => this.onConnClose(c, why));
  }

  /** hello opens a new connection with fresh session keys and checks the server's identity. */
  async hello(retried = false) {
    this.dropConn("replaced");
    this.eraseKeys();
    const keys = lc.newSessionKeys();
    const c = this.newConn();
    this.conn = c;
    const hello = lc.clientHello(keys);
    const answer = new Promise((resolve, reject) => { c.first = { resolve, reject }; });
    answer.catch(() => {}); // awaited below, unless the connection fails first
    const timer = setTimeout(() => c.close("no hello from the server"), this.opts.helloTimeout);
    try {
      await c.ready;
      c.send(hello);
      const p = await answer;
      clearTimeout(timer); // the person may take their time over the fingerprint
      if (lc.envelopeKind(p) === lc.KIND_PLAIN_ERROR) throw plainError(p);
      const { peer, identity } = lc.parseServerHello(p, hello);
      const fp = lc.fingerprint(identity);
      if (!(await this.opts.checkIdentity(identity, fp))) {
        c.close("identity refused");
        throw new IdentityRefused(fp);
      }
      if (c.closed) {
        // The server closed it while the person decided (its login
        // timeout): the key is now known, so a new hello asks nothing.
        if (retried) throw new ConnectionLost("the server closed the connection");
        return this.hello(true);
      }
      this.keys = keys;
      this.channel = new lc.Channel(keys, peer);
      c.established = true;
      this.identity = { key: identity, fingerprint: fp };
      return this.identity;
    } catch (e) {
      c.close("hello failed");
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  onPayload(p, c) {
    if (c.first) { // the answer to a hello or a resume
      const f = c.first;
      c.first = null;
      f.resolve(p);
      return;
    }
    if (c !== this.conn) return;
    const kind = lc.envelopeKind(p);
    if (kind !== lc.KIND_SEALED) return c.close("unexpected envelope");
    let body;
    try {
      body = JSON.parse(dec.decode(this.channel.open(p)));
    } catch {
      return c.close("an envelope failed its checks"); // PROTOCOL.md 2.2: drop it and close
    }
    if (typeof body !== "object" || body === null) return c.close("answer is not an object");
    const w = typeof body.re === "number" ? this.waiting.get(body.re) : undefined;
    if (!w) {
      // An error without re: one of our requests was dropped unanswered.
      if (body.op === "error") c.close("error without re: " + body.code);
      return;
    }
    this.waiting.delete(body.re);
    clearTimeout(w.timer);
    if (body.op === "error") w.reject(new ServerError(String(body.code), String(body.message || "")));
    else w.resolve(body);
  }

  onConnClose(c, why) {
    if (c.first) { c.first.reject(new ConnectionLost(why)); c.first = null; }
    for (const [id, w] of this.waiting) {
      if (w.conn === c) {
        this.waiting.delete(id);
        clearTimeout(w.timer);
        w.reject(new ConnectionLost(why));
      }
    }
    if (c === this.conn) {
      this.conn = null;
      if (this.info && !this.stopped) this.recover();
    }
  }

  dropConn(why) {
    const c = this.conn;
    this.conn = null;
    if (c) c.close(why);
  }

  eraseKeys() {
    if (this.channel) this.channel.erase();
    this.channel = null;
    this.keys = null;
  }

  /** request seals one request and resolves with its answer (rejects with ServerError or ConnectionLost). */
  request(fields, timeout, id) {
    const c = this.conn;
    // Only on a connection whose hello or resume is done: an envelope sent
    // before the resume would be the connection's first, and refused.
    if (!c || c.closed || !c.established || !this.channel) return Promise.reject(new ConnectionLost("not connected"));
    if (id === undefined) id = ++this.nextID;
    const body = enc.encode(JSON.stringify({ ...fields, id }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ConnectionLost("no answer in time"));
        c.close("no answer in time: the connection is dead");
      }, timeout ?? this.opts.replyMargin);
      this.waiting.set(id, { resolve, reject, timer, conn: c });
      try {
        c.send(this.channel.seal(body));
      } catch (e) {
        this.waiting.delete(id);
        clearTimeout(timer);
        reject(e instanceof ConnectionLost ? e : new ConnectionLost(String(e.message)));
      }
    });
  }

  // ---- login and recovery ----

  /** login logs in with password, on a fresh connection when needed. */
  async login(password) {
    this.stopped = false;
    if (!this.conn || this.conn.closed || !this.channel || Date.now() - this.conn.opened > this.opts.freshFor) {
      await this.hello();
    }
    let r;
    try {
      r = await this.request({ op: "login", password }, this.opts.loginTimeout);
    } catch (e) {
      if (!(e instanceof ConnectionLost)) throw e;
      await this.hello(); // closed as the password went out: once more
      r = await this.request({ op: "login", password }, this.opts.loginTimeout);
    }
    if (r.op !== "connected" || r.status !== STATUS_CONNECTED || typeof r.pseudo !== "string" || !Array.isArray(r.salons)) {
      throw new Error("the server answered the login with something unexpected");
    }
    this.password = password;
    this.info = {
      pseudo: r.pseudo,
      salons: r.salons.filter((s) => typeof s === "string"),
      sessionTimeout: positive(r.session_timeout_ms, 30000),
      poll: positive(r.poll_ms, 3000),
    };
    this.emit("status", { state: "online" });
    this.emit("login", this.info);
    this.kick();
    return this.info;
  }

  /** window is how long to try resuming: session_timeout_ms − 5 s (25 s if that is too short). */
  window() {
    const w = this.info.sessionTimeout - 5000;
    return w > 0 ? w : 25000;
  }

  recover() {
    if (this.recovering) return this.recovering;
    this.recovering = this.doRecover().finally(() => { this.recovering = null; });
    return this.recovering;
  }

  async doRecover() {
    const until = Date.now() + this.window();
    while (!this.stopped && this.info) {
      if (Date.now() >= until) break;
      this.emit("status", { state: "reconnecting" });
      try {
        await this.resume();
        this.emit("status", { state: "online" });
        this.kick();
        return;
      } catch (e) {
        if (e instanceof ServerError && (e.code === "unknown_session" || e.code === "crypto")) {
          // The server will never take this session back (a restart): log in
          // again after a random short delay, so that the pages of a
          // restarted server do not all log in in the same instant.
          return this.relogin(Math.random() * this.opts.reloginJitter);
        }
        if (e instanceof ServerError && e.code === "auth") return this.ended(e.message);
      }
      await this.countdown(this.opts.retryDelay);
    }
    if (!this.stopped && this.info) return this.relogin(this.opts.reloginDelay);
  }

  /** countdown waits ms, telling the view every second how long is left. */
  async countdown(ms) {
    const end = Date.now() + ms;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0 || this.stopped) return;
      this.emit("status", { state: "waiting", retryIn: Math.ceil(left / 1000) });
      await sleep(Math.min(left, 1000));
    }
  }

  async resume() {
    if (!this.channel) throw new ServerError("unknown_session", "no session keys");
    const c = this.newConn();
    this.conn = c;
    const answer = new Promise((resolve, reject) => { c.first = { resolve, reject }; });
    answer.catch(() => {}); // awaited below, unless the connection fails first
    const timer = setTimeout(() => c.close("no answer to resume"), this.opts.replyMargin);
    try {
      await c.ready;
      const id = ++this.nextID;
      c.send(this.channel.seal(enc.encode(JSON.stringify({ op: "resume", id }))));
      const p = await answer;
      if (lc.envelopeKind(p) === lc.KIND_PLAIN_ERROR) throw plainError(p);
      const body = JSON.parse(dec.decode(this.channel.open(p)));
      if (body.op === "error") throw new ServerError(String(body.code), String(body.message || ""));
      if (body.op !== "resumed" || body.re !== id || body.status !== STATUS_CONNECTED) throw new Error("bad answer to resume");
      c.established = true;
      return;
    } catch (e) {
      c.close("resume failed");
      if (e instanceof lc.CryptoError) throw new ServerError("crypto", "resume answer failed its checks");
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async relogin(delay) {
    this.eraseKeys();
    this.dropConn("relogin");
    if (delay > 0) await this.countdown(delay);
    while (!this.stopped && this.password) {
      this.emit("status", { state: "reconnecting" });
      try {
        await this.login(this.password);
        return;
      } catch (e) {
        if (e instanceof IdentityRefused) return this.ended("The server's identity key changed: not logging in again.");
        if (e instanceof ServerError && e.code === "auth") return this.ended("Your password was not accepted: log in again.");
      }
      await this.countdown(this.opts.retryDelay * 3);
    }
  }

  /** ended: the session is over for good; the view goes back to the login form. */
  ended(reason) {
    this.stopped = true;
    this.info = null;
    this.pollGen++;
    this.dropConn("ended");
    this.eraseKeys();
    this.emit("status", { state: "loggedout", reason });
  }

  // ---- salons and messages ----

  /** open makes salon the open one: its latest messages, then a long-poll. */
  open(salon) {
    this.salon = salon;
    this.oldest.delete(salon);
    this.emit("opened", { salon });
    this.kick(true);
  }

  /** kick (re)starts the poller of the open salon and the outbox after a (re)connection. */
  kick(reload = false) {
    if (reload || this.salon) this.startPoll(reload);
    this.pump();
  }

  async startPoll(reload) {
    const gen = ++this.pollGen;
    const salon = this.salon;
    if (!salon || !this.info) return;
    const wait = Math.min(Math.max(this.info.poll - 500, 0), 2500);
    try {
      if (reload || !this.lastSeen.has(salon)) {
        const r = await this.request({ op: "fetch", salon, limit: this.opts.pageSize });
        if (gen !== this.pollGen) return;
        this.deliver(salon, r, "latest");
      }
      for (;;) {
        const after = this.lastSeen.get(salon) || 0;
        const r = await this.request({ op: "fetch", salon, after, wait_ms: wait, limit: this.opts.pageSize },
          wait + this.opts.replyMargin);
        if (gen !== this.pollGen) return;
        this.deliver(salon, r, "new");
        if (!r.messages.length) await sleep(this.info.poll - wait); // keep the cadence
        if (gen !== this.pollGen) return;
      }
    } catch (e) {
      if (gen !== this.pollGen) return;
      if (e instanceof ServerError) {
        if (e.code === "auth") return this.ended(e.message);
        this.emit("error", { message: "Cannot read #" + salon + ": " + e.message });
      }
      // ConnectionLost: recovery restarts the poller.
    }
  }

  deliver(salon, r, how) {
    if (r.op !== "messages" || !Array.isArray(r.messages)) return;
    const msgs = r.messages.filter(validMessage);
    if (msgs.length) {
      const newest = msgs[msgs.length - 1].id;
      if (how !== "older" && newest > (this.lastSeen.get(salon) || 0)) this.lastSeen.set(salon, newest);
      const oldest = msgs[0].id;
      if (!this.oldest.has(salon) || oldest < this.oldest.get(salon)) this.oldest.set(salon, oldest);
    } else if (how === "latest") {
      this.lastSeen.set(salon, 0);
    }
    this.emit("messages", { salon, messages: msgs, how, more: r.more === true });
  }

  /** older loads the page of messages before the oldest shown. */
  async older() {
    const salon = this.salon;
    const before = this.oldest.get(salon);
    if (!salon || !before) return;
    const r = await this.request({ op: "fetch", salon, before, limit: this.opts.pageSize });
    if (salon === this.salon) this.deliver(salon, r, "older");
  }

  /** salons returns [{name, last, unread, mentions}] for the salon list. */
  async salons() {
    const r = await this.request({ op: "salons" });
    const out = [];
    for (const s of Array.isArray(r.salons) ? r.salons : []) {
      if (!s || typeof s.name !== "string" || typeof s.last !== "number") continue;
      const item = { name: s.name, last: s.last, unread: 0, mentions: 0 };
      const seen = this.lastSeen.get(s.name);
      if (s.name !== this.salon && seen !== undefined && s.last > seen) {
        const f = await this.request({ op: "fetch", salon: s.name, after: seen, limit: 100 });
        const msgs = (f.messages || []).filter(validMessage);
        item.unread = msgs.length;
        item.more = f.more === true;
        item.mentions = msgs.filter((m) => mentions(m.text, this.info.pseudo)).length;
      } else if (seen === undefined && s.name !== this.salon) {
        this.lastSeen.set(s.name, s.last); // first sight: count from now
      }
      out.push(item);
    }
    return out;
  }

  async who(salon = this.salon) {
    const r = await this.request({ op: "who", salon });
    return Array.isArray(r.pseudos) ? r.pseudos.filter((p) => typeof p === "string") : [];
  }

  /** passwd changes the password (PROTOCOL.md 3.8); a lost answer is asked again with the same id. */
  async passwd(current) {
    const id = ++this.nextID;
    for (let tries = 0; ; tries++) {
      try {
        const r = await this.request({ op: "passwd", password: current }, undefined, id);
        if (typeof r.password !== "string" || r.op !== "passwd") throw new Error("unexpected answer to passwd");
        this.password = r.password;
        return r.password;
      } catch (e) {
        if (!(e instanceof ConnectionLost) || tries >= 3 || !this.info) throw e;
        await this.recover();
      }
    }
  }

  // ---- sending ----

  /** send queues text for the open salon; the outbox keeps it until its ack. */
  send(text, salon = this.salon) {
    const item = { cid: randomCID(), salon, text, state: "pending", msg: 0 };
    this.outbox.push(item);
    this.emit("outbox", item);
    this.pump();
    return item;
  }

  pending() { return this.outbox.filter((i) => i.state === "pending"); }

  /** restore queues lines saved before a reload, keeping their cids (each is stored once). */
  restore(items) {
    for (const { cid, salon, text } of items) {
      if (this.outbox.some((i) => i.cid === cid)) continue;
      const item = { cid, salon, text, state: "pending", msg: 0 };
      this.outbox.push(item);
      this.emit("outbox", item);
    }
    this.pump();
  }

  async pump() {
    if (this.sending) return;
    this.sending = true;
    try {
      while (!this.stopped) {
        const item = this.outbox.find((i) => i.state === "pending");
        if (!item || !this.conn || !this.info) return;
        try {
          const r = await this.request({ op: "send", salon: item.salon, text: item.text, cid: item.cid });
          item.state = "stored";
          item.msg = typeof r.msg === "number" ? r.msg : 0;
          this.outbox = this.outbox.filter((i) => i !== item);
          this.emit("outbox", item);
        } catch (e) {
          if (e instanceof ConnectionLost) return; // kept for after the resume
          if (e.code === "rate_limited" || e.code === "unavailable") {
            await sleep(this.opts.retryDelay);
            continue;
          }
          if (e.code === "auth") return this.ended(e.message);
          item.state = "failed";
          item.error = e.message;
          this.outbox = this.outbox.filter((i) => i !== item);
          this.emit("outbox", item);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  // ---- the end ----

  /** logout says bye, waits briefly for the answer, and erases the keys. */
  async logout() {
    this.stopped = true;
    this.pollGen++;
    try { if (this.info) await this.request({ op: "bye" }); } catch { /* gone anyway */ }
    this.info = null;
    this.password = null;
    this.dropConn("bye");
    this.eraseKeys();
    this.emit("status", { state: "loggedout", reason: "" });
  }

  /** byeNow sends bye without waiting (the page is going away). */
  byeNow() {
    if (!this.info || !this.conn || !this.conn.established || !this.channel) return;
    try {
      this.conn.send(this.channel.seal(enc.encode(JSON.stringify({ op: "bye", id: ++this.nextID }))));
    } catch { /* nothing to do */ }
    this.stopped = true;
  }
}

function plainError(p) {
  try {
    const b = JSON.parse(dec.decode(p.subarray(2)));
    return new ServerError(String(b.code), String(b.message || ""));
  } catch {
    return new ServerError("internal", "malformed plain error");
  }
}

function positive(v, d) { return Number.isInteger(v) && v > 0 ? v : d; }

function validMessage(m) {
  return m && Number.isSafeInteger(m.id) && m.id > 0 && typeof m.text === "string" &&
    typeof m.pseudo === "string" && typeof m.at === "string";
}

/** mentions says whether text names pseudo (as a word, any case, with or without @). */
export function mentions(text, pseudo) {
  if (!pseudo) return false;
  const t = text.toLowerCase(), p = pseudo.toLowerCase();
  for (let i = t.indexOf(p); i >= 0; i = t.indexOf(p, i + 1)) {
    const before = i === 0 ? "" : t[i - 1], after = t[i + p.length] || "";
    if (!/[a-z0-9_.-]/.test(before) && !/[a-z0-9_-]/.test(after)) return true;
  }
  return false;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, Math.max(0, ms))); }
