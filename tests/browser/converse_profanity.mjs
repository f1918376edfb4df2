// Issue 17's "done when", by a script instead of by hand: Converse.js in headless Chromium (alice,
// over WebSocket) and Profanity in a terminal (bob, over STARTTLS; Debian's package, run in tmux
// by run.sh) become contacts through Starling, chat both ways and share a file each way
// (XEP-0363: Converse's upload button, Profanity's /sendfile). What Profanity shows is read with
// `tmux capture-pane`; the page with screenshots. Not in CI (Profanity is a terminal program):
// `tests/browser/run.sh profanity`.
//
// Usage (run.sh does this): node converse_profanity.mjs HTTP_PORT TMUX_SESSION SCREENSHOT_DIR RESULTS_FILE
// Users alice and bob exist with password "pw"; Profanity is logged in as bob@localhost.
// Prints and appends to RESULTS_FILE "browser/profanity_<case> pass|fail"; exits 1 on failure.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { STEP_MS, log, sleep, until, verdictsWithDeadline } from "./common.mjs";

const [httpPort, session, shots, results] = process.argv.slice(2);
const DOMAIN = "localhost";
const PAGE = `http://127.0.0.1:${httpPort}/web`;
// The whole script is bounded by this.
const DEADLINE_MS = 150000;

mkdirSync(shots, { recursive: true });
const { verdicts, report, deadline } = verdictsWithDeadline(
  ["profanity_contact", "profanity_chat", "profanity_files"], results, DEADLINE_MS);

// Profanity's terminal, through tmux.
const terminal = () => execFileSync("tmux", ["capture-pane", "-p", "-J", "-t", session]).toString();
function type(line) {
  execFileSync("tmux", ["send-keys", "-t", session, "-l", "--", line]);
  execFileSync("tmux", ["send-keys", "-t", session, "Enter"]);
  log(`profanity> ${line}`);
}
const seen = (what, text, ms) => until(`"${text}" in Profanity (${what})`, () => terminal().includes(text), ms);

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const base = join(shots, `${String(shot).padStart(2, "0")}-${name}`);
  await page.screenshot({ path: `${base}.png`, fullPage: true });
  writeFileSync(`${base}.profanity.txt`, terminal());
  log(`screenshot ${base}.png (+ Profanity's screen in ${base}.profanity.txt)`);
}

let browser;
let page;
const consoleLines = [];
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
    timeout: STEP_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  await context.route((url) => !["127.0.0.1", "localhost"].includes(url.hostname),
    (route) => route.abort("blockedbyclient"));
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));

  // 1. alice logs in through Converse and adds bob; bob accepts in Profanity.
  await page.goto(PAGE, { waitUntil: "load" });
  await page.fill("#converse-login-jid", `alice@${DOMAIN}`);
  await page.fill("#converse-login-password", "pw");
  await page.click("converse-login-form button[type=submit]");
  await page.locator(".controlbox-heading--contacts").waitFor({ state: "visible" });
  log("alice logged in through Converse.js");
  await page.click(".dropdown--contacts button");
  await page.click("a.add-contact");
  const form = page.locator("form.add-xmpp-contact");
  await form.locator('input[name="jid"]').fill(`bob@${DOMAIN}`);
  await form.locator('input[name="name"]').fill("Bob");
  await form.locator("button[type=submit]").click();
  // RFC 6121 §3.1.3: Profanity shows the request; bob approves it and asks back (§3.1.5), which
  // Converse approves by itself (alice asked first).
  await seen("alice's subscription request", `Received authorization request from alice@${DOMAIN}`);
  type(`/sub allow alice@${DOMAIN}`);
  type(`/sub request alice@${DOMAIN}`);
  const contact = page.locator(`converse-roster-contact a.open-chat[data-jid="bob@${DOMAIN}"]`);
  await contact.waitFor({ state: "visible" });
  await until("bob shown online in alice's roster", async () =>
    (await page.locator(`converse-roster-contact:has(a[data-jid="bob@${DOMAIN}"]) converse-icon.chat-status--online`).count()) > 0
    || (await page.locator(`.current-xmpp-contact.online:has(a[data-jid="bob@${DOMAIN}"])`).count()) > 0);
  await sleep(500);
  type("/roster");
  await seen("the subscription state", `alice@${DOMAIN} - both`);
  await screenshot(page, "contacts");
  verdicts.profanity_contact = "pass";

  // 2. Messages both ways.
  await contact.click();
  const chat = page.locator(`converse-chat[jid="bob@${DOMAIN}"]`);
  const textarea = chat.locator("textarea.chat-textarea");
  await textarea.waitFor({ state: "visible" });
  const hello = `Hello Bob, from Chromium ${Date.now()}`;
  await textarea.fill(hello);
  await textarea.press("Enter");
  // Profanity opens a chat window for it (window 2) and says so in the console window.
  await seen("the chat window", `chat message: alice@${DOMAIN}/`);
  type("/win 2");
  await seen("alice's message", hello);
  const reply = `Hi Alice, from Profanity ${Date.now()}`;
  type(`/msg alice@${DOMAIN} ${reply}`);
  await chat.locator(".chat-msg__text", { hasText: reply }).waitFor({ state: "visible" });
  await screenshot(page, "chat");
  verdicts.profanity_chat = "pass";

  // 3. Files both ways (XEP-0363): alice through Converse's upload button; Profanity shows the
  // URL and saves it (`/url save`); bob sends one with `/sendfile`, which Converse shows.
  const content = `A file from Chromium ${Date.now()}\n`;
  await chat.locator('input[type="file"]').setInputFiles(
    { name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from(content) });
  const urlPattern = new RegExp(`http://127\\.0\\.0\\.1:${httpPort}/upload/\\S+/hello\\.txt`);
  const url = await until("the shared file's URL in Profanity", () => terminal().match(urlPattern)?.[0]);
  const saved = join(shots, "saved-by-profanity.txt");
  type(`/url save ${url} ${saved}`);
  await until("Profanity saving the file", () => {
    try { return readFileSync(saved, "utf8") === content; } catch { return false; }
  });
  log(`Profanity saved ${url} byte for byte`);
  const bobFile = join(shots, "from-profanity.txt");
  writeFileSync(bobFile, `A file from Profanity ${Date.now()}\n`);
  type(`/sendfile ${bobFile}`);
  const link = chat.locator(`a[href*="/upload/"][href$="/from-profanity.txt"], .chat-msg__text:has-text("from-profanity.txt")`);
  await link.first().waitFor({ state: "visible" });
  const href = await chat.locator(`a[href$="/from-profanity.txt"]`).first().getAttribute("href").catch(() => null);
  const fetched = href ? await (await fetch(href)).text() : null;
  if (fetched !== readFileSync(bobFile, "utf8")) throw new Error(`alice fetched ${JSON.stringify(fetched)} from ${href}`);
  log(`alice got ${href} from Profanity's /sendfile, byte for byte`);
  await screenshot(page, "files");
  verdicts.profanity_files = "pass";
  type("/quit");
} catch (e) {
  console.error(`browser: ${e.stack || e}`);
  if (page) await screenshot(page, "failure").catch(() => {});
} finally {
  writeFileSync(join(shots, "console.log"), consoleLines.join("\n") + "\n");
  await browser?.close().catch(() => {});
  clearTimeout(deadline);
}
report();
process.exit(Object.values(verdicts).every((v) => v === "pass") ? 0 : 1);
