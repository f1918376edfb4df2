// A real browser against Starling (issue 17 item 10): headless Chromium, driven by
// playwright-core, opens the server's /web page (Converse.js from a local npm install), logs in
// as alice over the page's WebSocket (RFC 7395), adds bob as a contact through Converse's
// "Add a contact" form, and chats with bob, who is an @xmpp/client TCP client in this process.
//
// Usage (run.sh does this): node converse.mjs HTTP_PORT C2S_PORT SCREENSHOT_DIR RESULTS_FILE
// Users alice and bob exist with password "pw". Prints and appends to RESULTS_FILE the lines
// "browser/converse_login pass|fail" and "browser/converse_chat pass|fail"; exits 1 on failure.
// Environment: CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { client, xml } from "@xmpp/client";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { STEP_MS, log, sleep, until, verdictsWithDeadline } from "./common.mjs";

const [httpPort, c2sPort, shots, results] = process.argv.slice(2);
const DOMAIN = "localhost";
const PAGE = `http://127.0.0.1:${httpPort}/web`;
// The server's certificate is self-signed (made at its first start).
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
// The whole script is bounded by this.
const DEADLINE_MS = 120000;

mkdirSync(shots, { recursive: true });
const { verdicts, report, deadline } = verdictsWithDeadline(
  ["converse_login", "converse_chat", "converse_upload"], results, DEADLINE_MS);

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = join(shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

// bob: a TCP client (STARTTLS on the c2s port) that approves alice's subscription request,
// subscribes back, and keeps every stanza it gets.
async function startBob() {
  const bob = client({
    service: `xmpp://127.0.0.1:${c2sPort}`,
    domain: DOMAIN,
    resource: "tcp",
    username: "bob",
    password: "pw",
  });
  bob.inbox = [];
  bob.on("error", (e) => log("bob error", e.name, e.condition ?? "", e.message, e.element?.toString() ?? "", e.stack));
  bob.on("stanza", async (s) => {
    bob.inbox.push(s);
    if (s.is("presence") && s.attrs.type === "subscribe") {
      const from = s.attrs.from.split("/")[0];
      log(`bob: subscription request from ${from}: approving and subscribing back`);
      await bob.send(xml("presence", { to: from, type: "subscribed" }));
      await bob.send(xml("presence", { to: from, type: "subscribe" }));
    }
  });
  await bob.start();
  await bob.iqCaller.get(xml("query", "jabber:iq:roster"));
  await bob.send(xml("presence"));
  return bob;
}

const consoleLines = [];
let browser;
let bob;
let page;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
    timeout: STEP_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  // Hermetic: nothing leaves this machine (Converse's login page shows sponsor logos from
  // conversejs.org, and its contact form looks up XMPP providers on data.xmpp.net).
  await context.route((url) => !["127.0.0.1", "localhost"].includes(url.hostname),
    (route) => route.abort("blockedbyclient"));
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  page.on("requestfailed", (r) =>
    consoleLines.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) consoleLines.push(`[http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  page.on("websocket", (ws) => {
    consoleLines.push(`[websocket] open ${ws.url()}`);
    ws.on("close", () => consoleLines.push(`[websocket] closed ${ws.url()}`));
    ws.on("socketerror", (e) => consoleLines.push(`[websocket] error ${e}`));
  });

  // 1. Log in through Converse's login form.
  log(`open ${PAGE}`);
  const response = await page.goto(PAGE, { waitUntil: "load" });
  if (response?.status() !== 200) throw new Error(`GET /web: ${response?.status()}`);
  await page.locator("#converse-login-jid").waitFor({ state: "visible" });
  await screenshot(page, "login-form");
  await page.fill("#converse-login-jid", `alice@${DOMAIN}`);
  await page.fill("#converse-login-password", "pw");
  await page.click("converse-login-form button[type=submit]");
  // Logged in: the roster ("Contacts" heading) is shown, the login form gone.
  await page.locator(".controlbox-heading--contacts").waitFor({ state: "visible" });
  await until("the login form to go", async () => (await page.locator("#converse-login-jid").count()) === 0);
  await screenshot(page, "logged-in");
  verdicts.converse_login = "pass";
  log("alice logged in through Converse.js");

  // 2. bob comes online over TCP; alice adds him through "Add a contact".
  bob = await startBob();
  log(`bob online as ${bob.jid}`);
  await page.click(".dropdown--contacts button");
  await page.click("a.add-contact");
  const form = page.locator("form.add-xmpp-contact");
  await form.waitFor({ state: "visible" });
  await form.locator('input[name="jid"]').fill(`bob@${DOMAIN}`);
  await form.locator('input[name="name"]').fill("Bob");
  await screenshot(page, "add-contact-form");
  await form.locator("button[type=submit]").click();
  await until("bob's subscription request", () =>
    bob.inbox.find((s) => s.is("presence") && s.attrs.type === "subscribe" &&
      s.attrs.from.startsWith(`alice@${DOMAIN}`)));
  // Mutual subscription: bob approved and subscribed back; Converse authorises that itself
  // (alice asked first). bob then sees alice's presence, and alice sees bob online.
  await until("alice's presence at bob", () =>
    bob.inbox.find((s) => s.is("presence") && !s.attrs.type &&
      s.attrs.from?.startsWith(`alice@${DOMAIN}/`)));
  const contact = page.locator(`converse-roster-contact a.open-chat[data-jid="bob@${DOMAIN}"]`);
  await contact.waitFor({ state: "visible" });
  // Converse marks an online contact's roster entry with its presence status.
  await until("bob shown online in alice's roster", async () =>
    (await page.locator(`converse-roster-contact:has(a[data-jid="bob@${DOMAIN}"]) converse-icon.chat-status--online`).count()) > 0
    || (await page.locator(`.current-xmpp-contact.online:has(a[data-jid="bob@${DOMAIN}"])`).count()) > 0);
  await screenshot(page, "bob-in-roster");
  log("bob is in alice's roster, online");

  // 3. alice → bob through the page.
  await contact.click();
  const textarea = page.locator(`converse-chat[jid="bob@${DOMAIN}"] textarea.chat-textarea`);
  await textarea.waitFor({ state: "visible" });
  const hello = `Hello Bob, from Chromium ${Date.now()}`;
  await textarea.fill(hello);
  await textarea.press("Enter");
  const got = await until("alice's message at bob", () =>
    bob.inbox.find((s) => s.is("message") && s.getChildText("body") === hello));
  if (!got.attrs.from?.startsWith(`alice@${DOMAIN}/`)) throw new Error(`message from ${got.attrs.from}`);
  if (got.attrs.type !== "chat") throw new Error(`message type ${got.attrs.type}`);
  log(`bob got "${hello}" from ${got.attrs.from}`);
  await screenshot(page, "message-sent");

  // 4. bob → alice: the reply shows in alice's chat.
  const reply = `Hi Alice, from TCP ${Date.now()}`;
  await bob.send(xml("message", { to: got.attrs.from, type: "chat", id: "reply1" },
    xml("body", {}, reply)));
  await page.locator(`converse-chat[jid="bob@${DOMAIN}"] .chat-msg__text`, { hasText: reply })
    .waitFor({ state: "visible" });
  await screenshot(page, "reply-shown");
  log("bob's reply is shown in alice's chat");

  verdicts.converse_chat = "pass";

  // 5. XEP-0363: alice shares a small file through Converse's upload button (Converse asks
  // upload.localhost for a slot, PUTs the file, sends the GET URL with an XEP-0066 <x/>); bob
  // gets the message and downloads the file over HTTP, byte for byte.
  const content = `A file from Chromium ${Date.now()}\n`;
  const input = page.locator(`converse-chat[jid="bob@${DOMAIN}"] input[type="file"]`);
  await input.setInputFiles({ name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from(content) });
  const shared = await until("the shared file's URL at bob", () =>
    bob.inbox.find((s) => s.is("message") && s.getChild("x", "jabber:x:oob")));
  if (!shared.attrs.from?.startsWith(`alice@${DOMAIN}/`)) throw new Error(`file from ${shared.attrs.from}`);
  const url = shared.getChild("x", "jabber:x:oob").getChildText("url");
  if (!url?.includes("/upload/")) throw new Error(`oob url ${url}`);
  const download = await fetch(url);
  const body = await download.text();
  if (download.status !== 200 || body !== content) {
    throw new Error(`download ${download.status}: ${JSON.stringify(body)}`);
  }
  log(`bob got ${url} from ${shared.attrs.from} and downloaded it (${body.length} bytes, as sent)`);
  await screenshot(page, "file-shared");
  verdicts.converse_upload = "pass";
} catch (e) {
  console.error(`browser: ${e.stack || e}`);
  if (page) await screenshot(page, "failure").catch(() => {});
} finally {
  writeFileSync(join(shots, "console.log"), consoleLines.join("\n") + "\n");
  // What concerns this server: page errors, console errors other than the blocked outside
  // requests, and failed requests to it.
  const local = (l) => l.includes("//127.0.0.1:") || l.includes("//localhost:");
  const outside = (l) => l.includes("net::ERR_BLOCKED_BY_CLIENT") ||
    l.includes("Failed to fetch XMPP providers") || l.startsWith("[error] TypeError: Failed to fetch");
  const notable = consoleLines.filter((l) => l.startsWith("[pageerror]") ||
    (l.startsWith("[error]") && !outside(l)) ||
    ((l.startsWith("[requestfailed]") || l.startsWith("[http ")) && local(l)));
  if (notable.length) {
    console.log("browser console errors (everything in console.log beside the screenshots):");
    for (const l of notable) console.log(`  ${l.split("\n")[0]}`);
  }
  await bob?.stop().catch(() => {});
  await browser?.close().catch(() => {});
  clearTimeout(deadline);
}
report();
process.exit(Object.values(verdicts).every((v) => v === "pass") ? 0 : 1);
