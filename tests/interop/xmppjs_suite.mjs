// Interop cases driven by @xmpp/client (xmpp.js) against a running Starling.
// Usage: node --experimental-websocket xmppjs_suite.mjs PORT RESULTS_FILE HTTP_PORT
// (users created by run.sh, password "pw"; Node 20 needs the flag for its WebSocket)
// Writes "xmppjs/<case> pass|fail" lines to RESULTS_FILE.
import { client, xml } from "@xmpp/client";
import { appendFileSync } from "node:fs";

const [port, results, httpPort] = process.argv.slice(2);
const WS = `ws://127.0.0.1:${httpPort}/xmpp-websocket`;
const DOMAIN = "localhost";
// The server's certificate is self-signed (made at first start).
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function online(user, resource = "js", service = `xmpp://127.0.0.1:${port}`) {
  const c = client({ service, domain: DOMAIN, resource, username: user, password: "pw" });
  c.inbox = [];
  c.on("error", () => {});
  c.on("stanza", (s) => c.inbox.push(s));
  await c.start();
  return c;
}

async function until(pred, ms = 10000) {
  for (let t = 0; t < ms; t += 50) {
    const v = pred();
    if (v) return v;
    await sleep(50);
  }
  throw new Error("timed out waiting");
}

function find(c, pred) {
  return c.inbox.find(pred);
}

function rosterPush(c, jid, check) {
  return find(c, (s) => s.is("iq") && s.attrs.type === "set" &&
    s.getChild("query", "jabber:iq:roster")?.getChildren("item").some((i) => i.attrs.jid === jid && check(i)));
}

async function caseLogin() {
  const c = await online("js1");
  if (!String(c.jid).startsWith("js1@localhost/")) throw new Error(`bound ${c.jid}`);
  const roster = await c.iqCaller.get(xml("query", "jabber:iq:roster"));
  if (roster.attrs.ver === undefined) throw new Error("no roster version");
  await c.stop();
}

async function caseFriendRequestBoth() {
  const a = await online("js2", "Spark");
  const b = await online("js3", "Spark");
  for (const c of [a, b]) {
    await c.iqCaller.get(xml("query", "jabber:iq:roster"));
    await c.send(xml("presence"));
  }
  await a.iqCaller.set(xml("query", "jabber:iq:roster",
    xml("item", { jid: "js3@localhost", name: "js3" }, xml("group", {}, "Friends"))));
  await a.send(xml("presence", { to: "js3@localhost", type: "subscribe", id: "sub1" }));
  await until(() => find(b, (s) => s.is("presence") && s.attrs.type === "subscribe" && s.attrs.from === "js2@localhost"));
  await b.send(xml("presence", { to: "js2@localhost", type: "subscribed" }));
  await until(() => rosterPush(a, "js3@localhost", (i) => i.attrs.subscription === "to" && !i.attrs.ask));
  await b.send(xml("presence", { to: "js2@localhost", type: "subscribe" }));
  await until(() => find(a, (s) => s.is("presence") && s.attrs.type === "subscribe" && s.attrs.from === "js3@localhost"));
  await a.send(xml("presence", { to: "js3@localhost", type: "subscribed" }));
  await until(() => rosterPush(a, "js3@localhost", (i) => i.attrs.subscription === "both"));
  await until(() => rosterPush(b, "js2@localhost", (i) => i.attrs.subscription === "both"));
  await a.stop();
  await b.stop();
}

async function caseReceipt() {
  const a = await online("js4");
  const b = await online("js5");
  b.on("stanza", (s) => {
    // XEP-0184: the recipient acknowledges.
    if (s.is("message") && s.getChild("request", "urn:xmpp:receipts")) {
      b.send(xml("message", { to: s.attrs.from, id: `r-${s.attrs.id}` }, xml("received", { xmlns: "urn:xmpp:receipts", id: s.attrs.id })));
    }
  });
  await a.send(xml("message", { to: String(b.jid), id: "rcpt1", type: "chat" },
    xml("body", {}, "My lord, dispatch; read o'er these articles."), xml("request", { xmlns: "urn:xmpp:receipts" })));
  await until(() => find(a, (s) => s.is("message") && s.getChild("received", "urn:xmpp:receipts")?.attrs.id === "rcpt1"));
  await a.stop();
  await b.stop();
}

// XEP-0388 SASL2 + XEP-0386 Bind2 with a FAST token asked for (XEP-0484), then a reconnect of
// the same client (same <user-agent id/>) that logs in with the token: @xmpp/client 0.14 does
// both by itself when the server offers them (client-core/src/fast, sasl-ht-sha-256-none).
async function caseSasl2Fast() {
  const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: DOMAIN, resource: "fast", username: "js6", password: "pw" });
  c.on("error", () => {});
  const sent = [];
  c.on("send", (el) => sent.push(el));
  await c.start();
  const first = sent.find((el) => el.is("authenticate", "urn:xmpp:sasl:2"));
  if (!first) throw new Error("no SASL2 <authenticate/>");
  if (first.attrs.mechanism !== "SCRAM-SHA-1") throw new Error(`first login with ${first.attrs.mechanism}`);
  if (!first.getChild("bind", "urn:xmpp:bind:0")) throw new Error("no Bind2 request");
  if (!first.getChild("request-token", "urn:xmpp:fast:0")) throw new Error("no token requested");
  if (!String(c.jid).startsWith("js6@localhost/fast/")) throw new Error(`bound ${c.jid}`);
  const token = await c.fast.fetchToken();
  if (!token?.token) throw new Error("no FAST token received");
  const firstJid = String(c.jid);
  await c.stop();
  sent.length = 0;
  // Same client object: same user agent, token kept in memory.
  await c.start();
  const second = sent.find((el) => el.is("authenticate", "urn:xmpp:sasl:2"));
  if (second?.attrs.mechanism !== "HT-SHA-256-NONE") throw new Error(`reconnect with ${second?.attrs.mechanism}`);
  if (sent.some((el) => el.is("response", "urn:xmpp:sasl:2"))) throw new Error("FAST took more than one round trip");
  if (String(c.jid) !== firstJid) throw new Error(`resource not stable: ${firstJid} then ${c.jid}`);
  const roster = await c.iqCaller.get(xml("query", "jabber:iq:roster"));
  if (roster.attrs.ver === undefined) throw new Error("no roster after FAST login");
  await c.stop();
}

// XEP-0045 with raw XML: a room is created by entering it (§10.1.1: 110 and 201, owner and
// moderator) and opened as an instant room (§10.1.2: an empty submitted form); a second
// client enters (§7.2.3); each one's message to all is reflected to both (§7.4) from the
// sender's occupant JID with its id, the room's <stanza-id by=room/> (XEP-0359 §3) and the
// sender's <occupant-id/> (XEP-0421 §4, the one of its presence); the second leaves (§7.14).
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const ROOM = "jsroom@conference.localhost";

function mucPresence(c, nick, pred = () => true) {
  return find(c, (s) => s.is("presence") && s.attrs.from === `${ROOM}/${nick}` &&
    s.getChild("x", MUC_USER) && pred(s));
}

function codes(p) {
  return p.getChild("x", MUC_USER).getChildren("status").map((st) => st.attrs.code).sort();
}

function reflection(c, id) {
  return find(c, (s) => s.is("message") && s.attrs.type === "groupchat" && s.attrs.id === id);
}

function checkReflection(m, nick, body, occupantId) {
  if (m.attrs.from !== `${ROOM}/${nick}`) throw new Error(`from ${m.attrs.from}`);
  if (m.getChildText("body") !== body) throw new Error(`body ${m}`);
  const sid = m.getChild("stanza-id", "urn:xmpp:sid:0");
  if (!sid?.attrs.id || sid.attrs.by !== ROOM) throw new Error(`stanza-id ${m}`);
  if (m.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id !== occupantId) throw new Error(`occupant-id ${m}`);
  return sid.attrs.id;
}

async function caseMucGroupchat() {
  const a = await online("js7");
  const b = await online("js8");
  await a.send(xml("presence", { to: `${ROOM}/puck` }, xml("x", { xmlns: MUC })));
  const own = await until(() => mucPresence(a, "puck", (p) => codes(p).includes("110")));
  if (String(codes(own)) !== "110,170,201") throw new Error(`creator's status codes ${codes(own)}`);
  const item = own.getChild("x", MUC_USER).getChild("item");
  if (item.attrs.affiliation !== "owner" || item.attrs.role !== "moderator") throw new Error(`creator ${own}`);
  await until(() => find(a, (s) => s.is("message") && s.attrs.from === ROOM && s.getChild("subject")));
  await a.iqCaller.set(xml("query", `${MUC}#owner`, xml("x", { xmlns: "jabber:x:data", type: "submit" })), ROOM);
  const puckId = own.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id;
  if (!puckId) throw new Error(`no occupant-id in ${own}`);

  await b.send(xml("presence", { to: `${ROOM}/bottom` }, xml("x", { xmlns: MUC }, xml("history", { maxstanzas: "0" }))));
  const bOwn = await until(() => mucPresence(b, "bottom", (p) => codes(p).includes("110")));
  if (String(codes(bOwn)) !== "110,170") throw new Error(`status codes ${codes(bOwn)}`);
  const bottomId = bOwn.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id;
  if (!mucPresence(b, "puck")) throw new Error("the occupant's presence did not come before the own one");
  await until(() => mucPresence(a, "bottom"));

  await a.send(xml("message", { to: ROOM, type: "groupchat", id: "js-m1" }, xml("body", {}, "Ill met by moonlight")));
  const ids = [];
  for (const c of [a, b]) ids.push(checkReflection(await until(() => reflection(c, "js-m1")), "puck", "Ill met by moonlight", puckId));
  if (ids[0] !== ids[1]) throw new Error(`two stanza ids for one message: ${ids}`);
  await b.send(xml("message", { to: ROOM, type: "groupchat", id: "js-m2" }, xml("body", {}, "What, jealous Oberon?")));
  for (const c of [a, b]) checkReflection(await until(() => reflection(c, "js-m2")), "bottom", "What, jealous Oberon?", bottomId);
  if (bottomId === puckId) throw new Error("one occupant id for two users");

  await b.send(xml("presence", { to: `${ROOM}/bottom`, type: "unavailable" }));
  await until(() => mucPresence(b, "bottom", (p) => p.attrs.type === "unavailable" && codes(p).includes("110")));
  await until(() => mucPresence(a, "bottom", (p) => p.attrs.type === "unavailable"));
  // Each reflection arrived once.
  for (const c of [a, b]) {
    const n = c.inbox.filter((s) => s.is("message") && s.attrs.type === "groupchat" && s.getChild("body")).length;
    if (n !== 2) throw new Error(`${n} messages to all`);
  }
  await a.stop();
  await b.stop();
}

// RFC 7395: a client over WebSocket (xmpp.js's own framing parser, SASL2 and Bind2 over it) and
// one over TCP chat both ways.
async function caseWsChat() {
  const a = await online("js9", "browser", WS);
  const b = await online("js10", "desktop");
  if (!String(a.jid).startsWith("js9@localhost/browser")) throw new Error(`bound ${a.jid}`);
  await a.send(xml("message", { to: String(b.jid), id: "ws-m1", type: "chat" }, xml("body", {}, "from the web")));
  const m1 = await until(() => find(b, (s) => s.is("message") && s.attrs.id === "ws-m1"));
  if (m1.attrs.from !== String(a.jid) || m1.getChildText("body") !== "from the web") throw new Error(`got ${m1}`);
  await b.send(xml("message", { to: String(a.jid), id: "ws-m2", type: "chat" }, xml("body", {}, "from a desktop")));
  const m2 = await until(() => find(a, (s) => s.is("message") && s.attrs.id === "ws-m2"));
  if (m2.attrs.from !== String(b.jid) || m2.getChildText("body") !== "from a desktop") throw new Error(`got ${m2}`);
  await a.stop();
  await b.stop();
}

// XEP-0198 over WebSocket: the socket closes without </close> (a tab put to sleep, a network
// change); xmpp.js reconnects and resumes inside SASL2 (XEP-0388 with XEP-0198 inline); what
// was sent to it meanwhile arrives, on the same full JID.
async function caseWsResume() {
  const a = await online("js11", "browser", WS);
  const b = await online("js12", "desktop");
  await until(() => a.streamManagement.enabled && a.streamManagement.id);
  const jid = String(a.jid);
  let resumed = false;
  a.streamManagement.on("resumed", () => { resumed = true; });
  a.socket.socket.close();
  await until(() => a.status === "disconnect" || a.status === "connecting" || a.status === "connect");
  await b.send(xml("message", { to: jid, id: "ws-m3", type: "chat" }, xml("body", {}, "while you were away")));
  await until(() => resumed);
  const m = await until(() => find(a, (s) => s.is("message") && s.attrs.id === "ws-m3"));
  if (m.getChildText("body") !== "while you were away") throw new Error(`got ${m}`);
  if (String(a.jid) !== jid) throw new Error(`resumed as ${a.jid}, was ${jid}`);
  await a.stop();
  await b.stop();
}

const CASES = [
  ["login_scram_sha1_starttls", caseLogin],
  ["sasl2_bind2_then_fast_reconnect", caseSasl2Fast],
  ["friend_request_both", caseFriendRequestBoth],
  ["receipt", caseReceipt],
  ["muc_groupchat", caseMucGroupchat],
  ["websocket_chat_with_tcp", caseWsChat],
  ["websocket_sm_resume", caseWsResume],
];

export const USERS = ["js1", "js2", "js3", "js4", "js5", "js6", "js7", "js8", "js9", "js10", "js11", "js12"];

if (process.argv[2] === "--users") {
  console.log(USERS.join(" "));
} else {
  for (const [name, fn] of CASES) {
    let verdict = "pass";
    try {
      await Promise.race([fn(), sleep(30000).then(() => { throw new Error("case timed out"); })]);
    } catch (e) {
      console.error(name, e);
      verdict = "fail";
    }
    console.log(`xmppjs/${name} ${verdict}`);
    appendFileSync(results, `xmppjs/${name} ${verdict}\n`);
  }
  process.exit(0);
}
