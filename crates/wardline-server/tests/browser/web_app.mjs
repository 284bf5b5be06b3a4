// Drives Debian's Chromium (headless) through the clinicians' web app as a
// nurse would, by keyboard and labels: sign in with password and second
// factor (a wrong code first), see who is signed in, sign out. Every screen
// is audited by axe-core and photographed; the session token must never be
// within reach of page script. Called by tests/it/web_app.rs with one JSON
// argument; prints one JSON line per step; exits non-zero on a fault.
//
// Then a newcomer enrols their second factor: the QR code is read as an
// authenticator app reads it, the app's code confirms it, the recovery codes
// are shown once.
//
// {url, org, email, password, wrongCode, code, displayName, screenshots,
//  newcomer: {email, displayName, totpAt}}
import { mkdirSync } from "node:fs";
import jsQR from "jsqr";
import * as OTPAuth from "otpauth";
import { axeAudit, launchChromium } from "./lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const log = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));
const fail = (msg) => {
  console.error(`web_app.mjs: ${msg}`);
  process.exit(1);
};

let page;
const problems = [];
mkdirSync(cfg.screenshots, { recursive: true });

async function screen(name, heading) {
  await page.getByRole("heading", { level: 1, name: heading }).waitFor({ timeout: 15000 });
  const result = await axeAudit(page);
  if (result.violations.length) fail(`${name}: accessibility violations ${JSON.stringify(result.violations)}`);
  await page.screenshot({ path: `${cfg.screenshots}/web-${name}.png`, fullPage: true });
  // The heading has focus, so a screen reader announces the new screen.
  const focused = await page.evaluate(() => document.activeElement?.tagName);
  return { a11y_passes: result.passes, focused };
}

/** Everything page script can read that a token could hide in. */
async function reachableByPage() {
  return page.evaluate(() =>
    JSON.stringify({
      local: { ...localStorage },
      session: { ...sessionStorage },
      cookie: document.cookie,
      html: document.documentElement.outerHTML,
    }),
  );
}

/**
 * What an authenticator app reads from the QR code: the SVG drawn on a
 * canvas in a blank page, its pixels decoded by jsQR.
 */
async function readQr(svg) {
  const scratch = await page.context().newPage();
  try {
    await scratch.setContent("<canvas></canvas>");
    const img = await scratch.evaluate(async (svg) => {
      const image = new Image();
      image.src = `data:image/svg+xml;base64,${btoa(svg)}`;
      await image.decode();
      const canvas = document.querySelector("canvas");
      canvas.width = image.width;
      canvas.height = image.height;
      const g = canvas.getContext("2d");
      g.drawImage(image, 0, 0);
      const { data, width, height } = g.getImageData(0, 0, canvas.width, canvas.height);
      return { data: Array.from(data), width, height };
    }, svg);
    const code = jsQR(Uint8ClampedArray.from(img.data), img.width, img.height);
    if (!code) fail("the enrolment QR code does not decode");
    return code.data;
  } finally {
    await scratch.close();
  }
}

const browser = await launchChromium();
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("worker", (w) => w.on("console", (m) => m.type() === "error" && problems.push(`worker: ${m.text()}`)));
  context.on("response", (r) => r.status() >= 500 && problems.push(`${r.status()} ${r.url()}`));

  // 1. The app, under its Content-Security-Policy.
  const resp = await page.goto(cfg.url);
  if (resp.status() !== 200) fail(`/ answered ${resp.status()}`);
  const csp = resp.headers()["content-security-policy"] ?? "";
  if (!csp.includes("script-src 'self' 'wasm-unsafe-eval'")) fail(`CSP: ${csp}`);
  const signIn = await screen("sign-in", "Sign in");
  log("opened", { title: await page.title(), ...signIn });

  // 2. Password, by keyboard.
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(cfg.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  log("password", await screen("second-factor", "Second factor"));

  // 3. A wrong code says so, and keeps the screen.
  const code = page.getByLabel(/authenticator app/);
  await code.fill(cfg.wrongCode);
  await page.keyboard.press("Enter");
  const alert = await page.getByRole("alert").innerText();
  await page.screenshot({ path: `${cfg.screenshots}/web-wrong-code.png`, fullPage: true });
  const audit = await axeAudit(page);
  if (audit.violations.length) fail(`wrong code: ${JSON.stringify(audit.violations)}`);
  log("wrong_code", { alert });

  // 4. The right code: signed in.
  await code.fill(cfg.code);
  await page.keyboard.press("Enter");
  const home = await screen("home", "Wardline");
  const text = await page.locator("main").innerText();
  if (!text.includes(cfg.displayName)) fail(`home does not name the user: ${text}`);
  const reachable = await reachableByPage();
  if (/wls_|wlm_|wlt_/.test(reachable)) fail("a session token is within reach of page script");
  log("signed_in", { ...home, text });

  // 5. Sign out: back to sign-in.
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  log("signed_out", await screen("signed-out", "Sign in"));

  // 6. A newcomer's first sign-in: second-factor enrolment by QR code.
  const n = cfg.newcomer;
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(n.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  const enrolScreen = await screen("enrol", "Set up your second factor");
  const qr = page.getByRole("img", { name: /QR code/ });
  await qr.waitFor();
  const uri = await readQr(await qr.evaluate((e) => e.outerHTML));
  // Shown in groups of four, as the apps accept it typed.
  const key = (await page.locator("code.secret").innerText()).replace(/\s/g, "");
  const totp = OTPAuth.URI.parse(uri);
  if (totp.secret.base32 !== key) fail(`the QR code's secret ${totp.secret.base32} is not the key shown ${key}`);
  await page.getByRole("textbox", { name: /authenticator app/ }).fill(totp.generate({ timestamp: n.totpAt * 1000 }));
  await page.getByRole("button", { name: "Confirm" }).click();
  const codesScreen = await screen("recovery-codes", "Recovery codes");
  const recovery = await page.getByRole("list", { name: "Recovery codes" }).getByRole("listitem").allInnerTexts();
  log("enrolled", {
    uri,
    issuer: totp.issuer,
    label: totp.label,
    algorithm: totp.algorithm,
    digits: totp.digits,
    period: totp.period,
    recovery,
    focused: [enrolScreen.focused, codesScreen.focused],
  });
  await page.getByRole("button", { name: "I have kept them" }).click();
  await screen("enrolled-home", "Wardline");
  const after = await page.locator("main").innerText();
  if (!after.includes(n.displayName)) fail(`home after enrolment does not name the user: ${after}`);
  log("newcomer_signed_in");

  if (problems.length) fail(problems.join("\n"));
} catch (e) {
  // What the pages said before the failure is usually why.
  const shown = await page?.locator("body").innerText().catch(() => "");
  fail(`${e.stack ?? e}\npage: ${shown}\n${problems.join("\n")}`);
} finally {
  await browser.close();
}
