// Shared by the browser scripts: Debian's Chromium, and axe-core audits
// against WCAG 2.1 A and AA.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createHash, X509Certificate } from "node:crypto";

// axe-core is evaluated over the DevTools protocol, so the page's own CSP
// (which allows only this server's scripts) stays in force for the rest.
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** The page's WCAG 2.1 A/AA violations (id and offending HTML) and pass count. */
export async function axeAudit(page) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  return {
    violations: result.violations.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.html) })),
    passes: result.passes.length,
  };
}

/**
 * Chromium's trust in the test server's own certificate (the one in
 * NODE_EXTRA_CA_CERTS), by its public key: a service worker is fetched only
 * over a connection without certificate errors, which `ignoreHTTPSErrors`
 * does not give. Trusts that key alone, not every certificate.
 */
export function trustTestCertificate() {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return [];
  const pems = readFileSync(file, "utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const hashes = pems.map((pem) =>
    createHash("sha256")
      .update(new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" }))
      .digest("base64"),
  );
  return hashes.length ? [`--ignore-certificate-errors-spki-list=${hashes.join(",")}`] : [];
}

/** Debian's Chromium, headless; `extraArgs` for a caller's own needs (the benchmark's `--js-flags`). */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      // A microphone for voice clips: Chromium's own fake device (a beep),
      // its permission granted as a person would.
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      ...extraArgs,
    ],
  });
}

/**
 * Waits until the Rust test gives signal `name` (`Live::signal`: a file in
 * `dir`), for what only it can do in the middle of a run (move the
 * server's clock, write from the command line).
 */
export async function waitForSignal(dir, name, timeoutMs = 120000) {
  const { existsSync, readFileSync } = await import("node:fs");
  const until = Date.now() + timeoutMs;
  while (!existsSync(`${dir}/${name}`)) {
    if (Date.now() > until) throw new Error(`no signal "${name}" from the test within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // What the test handed over with it (JSON; null for none).
  return JSON.parse(readFileSync(`${dir}/${name}`, "utf8"));
}

/**
 * What every browser script starts with: its config (the one argument), a
 * step printer (one JSON line each), `fail` (ends the run, naming the
 * script), the problems seen in watched pages (console errors in a page
 * or its workers, uncaught errors, 5xx answers) and the pages themselves,
 * and `audit`: axe-core, then a full-page screenshot `<prefix>-<name>.png`.
 */
export function scriptRun(script, prefix) {
  const cfg = JSON.parse(process.argv[2]);
  const problems = [];
  const pages = [];
  const fail = (msg) => {
    console.error(`${script}: ${msg}`);
    process.exit(1);
  };
  mkdirSync(cfg.screenshots, { recursive: true });
  return {
    cfg,
    problems,
    pages,
    fail,
    log: (step, extra = {}) => console.log(JSON.stringify({ step, ...extra })),
    async audit(page, name) {
      const result = await axeAudit(page);
      if (result.violations.length) fail(`${name}: accessibility violations ${JSON.stringify(result.violations)}`);
      await page.screenshot({ path: `${cfg.screenshots}/${prefix}-${name}.png`, fullPage: true });
    },
    watch(page, who) {
      pages.push(page);
      page.on("console", (m) => m.type() === "error" && problems.push(`${who} console: ${m.text()}`));
      page.on("pageerror", (e) => problems.push(`${who} page error: ${e.stack}`));
      page.on("worker", (w) => w.on("console", (m) => m.type() === "error" && problems.push(`${who} worker: ${m.text()}`)));
      page.on("response", (r) => r.status() >= 500 && problems.push(`${who}: ${r.status()} ${r.url()}`));
    },
  };
}
