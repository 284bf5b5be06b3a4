// Shared by the browser scripts: Debian's Chromium, and axe-core audits
// against WCAG 2.1 A and AA.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

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
