// Drives Debian's Chromium (headless) through a patient's secure link, as a
// patient would: keyboard and labels only. Called by tests/patient_portal.rs
// with one JSON argument; prints one JSON line per step; exits non-zero when a
// step does not show what a patient should see.
//
// {url, wrongAttempts, wrongDob, dob, smsLog, phone, expectText, forbidden: [..], reply?,
//  dobLabel, codeLabel, replyLabel}
import { readFileSync, existsSync } from "node:fs";
import { axeAudit, launchChromium } from "./lib.mjs";

// axe-core audits each page against WCAG 2 A and AA.
async function audit(where) {
  const result = await axeAudit(page);
  if (result.violations.length) {
    fail(`${where}: accessibility violations ${JSON.stringify(result.violations)}`);
  }
  return result.passes;
}

const cfg = JSON.parse(process.argv[2]);
const log = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));
const fail = (msg) => {
  console.error(`patient_portal.mjs: ${msg}`);
  process.exit(1);
};

// The newest verification code texted to the patient's number, after `since` lines.
function codesFor(phone) {
  if (!existsSync(cfg.smsLog)) return [];
  return readFileSync(cfg.smsLog, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.to === phone)
    .map((m) => /\b(\d{6})\b/.exec(m.body))
    .filter(Boolean)
    .map((m) => m[1]);
}

async function waitForNewCode(before) {
  for (let i = 0; i < 100; i++) {
    const codes = codesFor(cfg.phone);
    if (codes.length > before) return codes[codes.length - 1];
    await new Promise((r) => setTimeout(r, 100));
  }
  fail("no verification code arrived in the SMS log");
}

function assertNoPhi(html, where) {
  for (const secret of cfg.forbidden) {
    if (html.includes(secret)) fail(`${where} shows ${JSON.stringify(secret)} before verification`);
  }
}

// Submits a form and waits for the page it leads to (the URL may not change).
async function submit(action) {
  await Promise.all([page.waitForNavigation(), action()]);
}

let page;
const browser = await launchChromium();
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 } });
  page = await context.newPage();

  // 1. The link shows nothing about the patient or the message.
  let resp = await page.goto(cfg.url);
  if (resp.status() !== 200) fail(`link answered ${resp.status()}`);
  assertNoPhi(await page.content(), "the link page");
  const lang = await page.getAttribute("html", "lang");
  log("opened", { status: resp.status(), lang, title: await page.title(), a11y_passes: await audit("the link page") });

  // 2. Two wrong dates of birth, by keyboard: each says so and counts down.
  const dob = page.getByLabel(cfg.dobLabel);
  for (let i = 1; i <= cfg.wrongAttempts; i++) {
    await dob.focus();
    await dob.fill(cfg.wrongDob);
    await submit(() => page.keyboard.press("Enter"));
    const alert = await page.getByRole("alert").innerText();
    assertNoPhi(await page.content(), "a failed check");
    log("wrong_dob", { attempt: i, alert, a11y_passes: await audit("a failed check") });
  }

  // 3. The right date of birth: a code is texted to the number on file.
  const before = codesFor(cfg.phone).length;
  await page.getByLabel(cfg.dobLabel).fill(cfg.dob);
  await submit(() => page.getByRole("button").click());
  assertNoPhi(await page.content(), "the code page");
  const code = await waitForNewCode(before);
  log("code_texted", { a11y_passes: await audit("the code page") });

  // 4. The code opens the thread.
  await page.getByLabel(cfg.codeLabel).fill(code);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/thread$/);
  // A message sealed by its writer's client opens in the page's script.
  await page
    .waitForFunction((t) => document.querySelector("main").innerText.includes(t), cfg.expectText, { timeout: 5000 })
    .catch(() => fail("the thread does not show the secure message"));
  log("verified", {
    a11y_passes: await audit("the thread"),
    url_path: new URL(page.url()).pathname.replace(/\/p\/[^/]+/, "/p/<token>"),
    hash: new URL(page.url()).hash,
  });
  if (!cfg.reply) {
    await browser.close();
    process.exit(0);
  }

  // 5. A reply.
  await page.getByLabel(cfg.replyLabel).fill(cfg.reply);
  await submit(() => page.getByRole("button").click());
  const status = await page.getByRole("status").innerText();
  const after = await page.locator("main").innerText();
  if (!after.includes(cfg.reply)) fail("the reply is not in the thread");
  log("replied", { status });

  // 6. The session cookie is HttpOnly, Secure, SameSite=Strict and scoped to the link.
  const cookies = await context.cookies();
  const c = cookies.find((c) => c.name === "wl_portal");
  if (!c || !c.httpOnly || !c.secure || c.sameSite !== "Strict" || !c.path.startsWith("/p/")) {
    fail(`portal cookie is not locked down: ${JSON.stringify(c && { ...c, value: "…" })}`);
  }
  log("cookie", { httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite });

  // 7. Another browser with the same link but no session sees nothing.
  const stranger = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  resp = await stranger.goto(cfg.url + "/thread");
  assertNoPhi(await stranger.content(), "the thread without a session");
  if ((await stranger.content()).includes(cfg.expectText)) fail("the thread opened without a session");
  log("stranger", { status: resp.status() });
} finally {
  await browser.close();
}
