// app.js: the view. It knows the DOM and nothing of the wire: it calls the
// protocol client (client.js) and renders its events. Every string from
// the server goes through safeText and into textContent, never into HTML.

import { Client, IdentityRefused, ServerError, mentions } from "./client.js";
import { safeText, safeLine } from "./text.js";
import { b64std } from "./wire.js";
import { fingerprint } from "./lrcrypto.js";

const $ = (id) => document.getElementById(id);
const KNOWN = "librecord.known"; // this origin's server identity key, base64
const REMEMBERED = "librecord.password"; // only when "remember on this device" is ticked
const LAST_SALON = "librecord.salon";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function show(id, on) { $(id).hidden = !on; }

// ---- the insecure-delivery banner ----

function loopback(host) {
  return host === "localhost" || host === "[::1]" || /^127\./.test(host);
}
if (location.protocol === "http:" && !loopback(location.hostname)) show("insecure", true);

// ---- trust on first use (PROTOCOL.md 6), remembered per origin ----

let trustAnswer = null; // resolves the pending first-contact question

async function checkIdentity(key, fp) {
  const known = localStorage.getItem(KNOWN);
  const mine = b64std(key);
  if (known === mine) return true;
  if (known) {
    $("changed-new").textContent = fp;
    $("changed-old").textContent = fingerprintOfStored(known);
    show("changed", true);
    show("login", false);
    show("trust", false);
    $("connect-status").textContent = "Refused: the server's identity key changed.";
    return false;
  }
  $("trust-fp").textContent = fp;
  show("trust", true);
  $("connect-status").textContent = "Check the server's fingerprint.";
  $("trust-yes").focus();
  const ok = await new Promise((resolve) => { trustAnswer = resolve; });
  show("trust", false);
  if (ok) localStorage.setItem(KNOWN, mine);
  return ok;
}

function fingerprintOfStored(b64) {
  try {
    return fingerprint(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  } catch {
    return "(a different key)";
  }
}

$("trust-yes").addEventListener("click", () => trustAnswer && trustAnswer(true));
$("trust-no").addEventListener("click", () => {
  if (trustAnswer) trustAnswer(false);
  $("connect-status").textContent = "Not trusted: nothing was sent. Reload the page to try again.";
});
$("changed-forget").addEventListener("click", () => {
  localStorage.removeItem(KNOWN);
  localStorage.removeItem(REMEMBERED);
  location.reload();
});

// ---- the client ----

const wsURL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const client = new Client({ url: wsURL, checkIdentity });
window.addEventListener("pagehide", () => client.byeNow());
// A page restored from the back-forward cache said bye when it was left:
// start over.
window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });

let me = "";
const shown = new Map(); // salon -> Set of message ids shown (each message once)
let salonList = [];
let unreadTimer = null;

async function start() {
  try {
    const id = await client.hello();
    $("login-fp").textContent = id.fingerprint;
    $("connect-status").textContent = "Connected. Log in with the password your host gave you.";
    show("login", true);
    const remembered = localStorage.getItem(REMEMBERED);
    if (remembered) {
      $("remember").checked = true;
      return login(remembered);
    }
    $("password").focus();
  } catch (e) {
    if (e instanceof IdentityRefused) return;
    $("connect-status").textContent = "Cannot reach the server (" + e.message + "). Reload to try again.";
  }
}

async function login(password) {
  $("login-error").textContent = "";
  $("login-button").disabled = true;
  $("connect-status").textContent = "Logging in…";
  try {
    const info = await client.login(password);
    if ($("remember").checked) localStorage.setItem(REMEMBERED, password);
    else localStorage.removeItem(REMEMBERED);
    $("password").value = "";
    enterChat(info);
  } catch (e) {
    if (e instanceof IdentityRefused) return;
    const msg = e instanceof ServerError && e.code === "auth" ? "Wrong password."
      : e instanceof ServerError && e.code === "rate_limited" ? "Too many attempts: wait a minute and try again."
      : "Could not log in: " + e.message;
    $("login-error").textContent = msg;
    $("connect-status").textContent = "Not logged in.";
    if (e instanceof ServerError && e.code === "auth") localStorage.removeItem(REMEMBERED);
    $("password").select();
  } finally {
    $("login-button").disabled = false;
  }
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  login($("password").value);
});

// Lines not yet stored survive a reload of the tab (sessionStorage: this
// tab only, gone when it closes) and go out again, with their cids, at the
// next login of the same person.
const UNSENT = "librecord.unsent";

function saveUnsent() {
  const items = client.pending().map(({ cid, salon, text }) => ({ cid, salon, text }));
  if (items.length) sessionStorage.setItem(UNSENT, JSON.stringify({ pseudo: me, items }));
  else sessionStorage.removeItem(UNSENT);
}

function restoreUnsent() {
  let saved;
  try { saved = JSON.parse(sessionStorage.getItem(UNSENT) || "null"); } catch { saved = null; }
  if (!saved || saved.pseudo !== me || !Array.isArray(saved.items)) return;
  client.restore(saved.items.filter((i) => i && typeof i.cid === "string" && typeof i.salon === "string" && typeof i.text === "string"));
}

function enterChat(info) {
  me = info.pseudo;
  restoreUnsent();
  $("me").textContent = safeLine(me);
  show("connect", false);
  show("chat", true);
  if (!client.salon || !info.salons.includes(client.salon)) {
    const last = localStorage.getItem(LAST_SALON);
    if (info.salons.length) client.open(info.salons.includes(last) ? last : info.salons[0]);
    else $("room-title").textContent = "You have no salon yet: ask your host.";
  }
  refreshSalons();
  clearInterval(unreadTimer);
  unreadTimer = setInterval(refreshSalons, Math.max(info.poll, 1000));
  $("text").focus();
}

client.on("login", (info) => { if (!$("chat").hidden) enterChat(info); });

client.on("status", (s) => {
  const net = $("net");
  net.className = "net " + s.state;
  if (s.state === "online") net.textContent = "online";
  else if (s.state === "reconnecting") net.textContent = "reconnecting…";
  else if (s.state === "waiting") net.textContent = "offline, retrying in " + s.retryIn + " s";
  else if (s.state === "loggedout") {
    clearInterval(unreadTimer);
    show("chat", false);
    show("connect", true);
    show("login", $("changed").hidden);
    $("connect-status").textContent = s.reason ? safeLine(s.reason) : "Logged out.";
    $("password").focus();
  }
});

// ---- salons ----

async function refreshSalons() {
  try {
    salonList = await client.salons();
  } catch { return; }
  renderSalons();
}

function renderSalons() {
  const ul = $("salons");
  ul.replaceChildren();
  for (const s of salonList) {
    const li = el("li");
    const b = el("button", "salon", "#" + safeLine(s.name));
    b.type = "button";
    if (s.name === client.salon) b.setAttribute("aria-current", "true");
    let label = s.name;
    if (s.unread) {
      const n = s.unread + (s.more ? "+" : "");
      b.append(el("span", s.mentions ? "badge mention" : "badge", n));
      label += ", " + n + " unread" + (s.mentions ? ", " + s.mentions + " mentioning you" : "");
    }
    b.setAttribute("aria-label", safeLine(label));
    b.addEventListener("click", () => openSalon(s.name));
    li.append(b);
    ul.append(li);
  }
}

function openSalon(name) {
  if (name === client.salon) return;
  localStorage.setItem(LAST_SALON, name);
  client.open(name);
  for (const s of salonList) if (s.name === name) { s.unread = 0; s.mentions = 0; }
  renderSalons();
  $("text").focus();
}

client.on("opened", ({ salon }) => {
  $("room-title").textContent = "#" + safeLine(salon);
  $("messages").replaceChildren();
  shown.set(salon, new Set());
  show("older", false);
  show("who", false);
  renderOutbox();
});

// ---- messages ----

function timeOf(at) {
  const d = new Date(at);
  return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageNode(m) {
  const li = el("li", m.system ? "msg system" : "msg");
  li.dataset.id = String(m.id);
  const t = el("time", "at", timeOf(m.at));
  t.dateTime = m.at;
  li.append(t);
  if (!m.system) li.append(el("span", "who", safeLine(m.pseudo)));
  li.append(el("span", "text", safeText(m.text)));
  if (!m.system && m.pseudo !== me && mentions(m.text, me)) li.classList.add("mention");
  return li;
}

client.on("messages", ({ salon, messages, how, more }) => {
  if (salon !== client.salon) return;
  const seen = shown.get(salon) || new Set();
  shown.set(salon, seen);
  const list = $("messages");
  const scroller = $("scroller");
  const fresh = messages.filter((m) => !seen.has(m.id));
  fresh.forEach((m) => seen.add(m.id));
  if (how === "older") {
    const before = scroller.scrollHeight - scroller.scrollTop;
    list.prepend(...fresh.map(messageNode));
    scroller.scrollTop = scroller.scrollHeight - before;
    show("older", more);
    return;
  }
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  for (const m of fresh) {
    // Keep ids in order even if a page arrives late.
    const node = messageNode(m);
    let next = null;
    for (let c = list.lastElementChild; c && Number(c.dataset.id) > m.id; c = c.previousElementSibling) next = c;
    list.insertBefore(node, next);
    if (how === "new" && node.classList.contains("mention")) notify(salon, m);
  }
  if (how === "latest") show("older", more);
  if (atBottom || how === "latest") scroller.scrollTop = scroller.scrollHeight;
});

client.on("error", (e) => { $("chat-error").textContent = safeLine(e.message); });

$("older").addEventListener("click", () => client.older().catch(() => {}));
$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop === 0 && !$("older").hidden) client.older().catch(() => {});
});

// ---- sending ----

function renderOutbox() {
  const ol = $("outbox");
  ol.replaceChildren();
  for (const item of client.outbox) {
    if (item.salon !== client.salon) continue;
    const li = el("li", "msg pending");
    li.append(el("span", "at", "sending"));
    li.append(el("span", "who", safeLine(me)));
    li.append(el("span", "text", safeText(item.text)));
    ol.append(li);
  }
}

client.on("outbox", (item) => {
  saveUnsent();
  renderOutbox();
  if (item.state === "failed") $("chat-error").textContent = "Not sent: " + safeLine(item.error || "refused") + ".";
});

function sendNow() {
  const ta = $("text");
  const text = ta.value.replace(/\r\n?/g, "\n").replace(/^\n+|\n+$/g, "");
  if (!text.trim() || !client.salon) return;
  $("chat-error").textContent = "";
  client.send(text);
  ta.value = "";
  $("scroller").scrollTop = $("scroller").scrollHeight;
}

$("composer").addEventListener("submit", (ev) => { ev.preventDefault(); sendNow(); });
$("text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    sendNow();
  }
});

// ---- who, password, notifications, logout ----

$("who-button").addEventListener("click", async () => {
  if (!$("who").hidden) return show("who", false);
  try {
    const list = await client.who();
    $("who-list").textContent = "Connected in #" + safeLine(client.salon) + ": " + list.map(safeLine).join(", ");
  } catch (e) {
    $("who-list").textContent = "Cannot tell: " + e.message;
  }
  show("who", true);
});

$("passwd-button").addEventListener("click", () => {
  show("passwd", $("passwd").hidden);
  if (!$("passwd").hidden) $("passwd-current").focus();
});
$("passwd-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("passwd-result");
  out.textContent = "Asking the server…";
  try {
    const pw = await client.passwd($("passwd-current").value);
    $("passwd-current").value = "";
    if (localStorage.getItem(REMEMBERED)) localStorage.setItem(REMEMBERED, pw);
    out.textContent = "Your new password (shown once; write it down): " + safeLine(pw);
  } catch (e) {
    out.textContent = e instanceof ServerError && e.code === "auth" ? "That is not your current password."
      : e instanceof ServerError && e.code === "bad_request" ? "This server cannot change passwords yet."
      : "Not changed: " + e.message;
    $("passwd-current").select();
  }
});

$("notify-button").addEventListener("click", async () => {
  if (!("Notification" in window)) {
    $("chat-error").textContent = "This browser has no notifications.";
    return;
  }
  const p = await Notification.requestPermission();
  $("notify-button").textContent = p === "granted" ? "Notify: on" : "Notify: off";
});

if ("Notification" in window && Notification.permission === "granted") $("notify-button").textContent = "Notify: on";

function notify(salon, m) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  try {
    new Notification(safeLine(m.pseudo) + " in #" + safeLine(salon), { body: safeText(m.text).slice(0, 200) });
  } catch { /* some phones only notify from a service worker */ }
}

$("logout").addEventListener("click", () => {
  localStorage.removeItem(REMEMBERED);
  sessionStorage.removeItem(UNSENT);
  client.logout();
});

start();
