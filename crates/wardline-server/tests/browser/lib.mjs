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
 * Signs `who` ({email}) in at `cfg.url` to organisation `cfg.org` with
 * `cfg.password` and the authenticator `code`, by labels as a person would;
 * returns once the signed-in page is shown.
 */
export async function signIn(page, cfg, who, code) {
  await page.goto(cfg.url);
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(who.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  await page.getByLabel(/authenticator app/).fill(code);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Wardline" }).waitFor({ timeout: 15000 });
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

/**
 * Web Push for a browser context of the app at `appUrl`, through the test's
 * push service (web-push-testing at `pushService`). Debian's Chromium has no push
 * service of its own (Chrome's is Google's, reached with keys Debian does not
 * ship), so `pushManager.subscribe` is the one browser call replaced: it
 * subscribes at the test's service with the app's VAPID key. The rest is the
 * browser's own: the service worker and its push event — delivered over the
 * DevTools protocol with exactly what the push service received from
 * Wardline and decrypted — and the notification it shows.
 */
export async function usePushService(ctx, appUrl, pushService) {
  const subscriptions = [];
  let seen = 0;
  const service = async (path, body) => {
    const r = await fetch(`${pushService}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(`push service ${path}: ${JSON.stringify(j)}`);
    return j.data;
  };
  await ctx.exposeBinding("wardlineTestSubscribe", async (_source, applicationServerKey) => {
    const sub = await service("/subscribe", { applicationServerKey });
    subscriptions.push(sub);
    return sub;
  });
  await ctx.addInitScript(() => {
    let current = null;
    const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const unb64 = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer;
    PushManager.prototype.subscribe = async function (options) {
      const key = options.applicationServerKey;
      const bytes = key instanceof ArrayBuffer ? key : key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength);
      const sub = await window.wardlineTestSubscribe(b64url(bytes));
      current = {
        endpoint: sub.endpoint,
        expirationTime: null,
        options: { applicationServerKey: bytes, userVisibleOnly: true },
        getKey: (name) => unb64(sub.keys[name]),
        toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }),
        unsubscribe: async () => {
          current = null;
          return true;
        },
      };
      return current;
    };
    PushManager.prototype.getSubscription = async function () {
      return current;
    };
  });
  return {
    latest: () => subscriptions.at(-1),
    /** The next push the service received for the latest subscription (its decrypted payload). */
    async next(timeoutMs = 30000, pollMs = 100) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const { messages } = await service("/get-notifications", { clientHash: subscriptions.at(-1).clientHash });
        if (messages.length > seen) return JSON.parse(messages[seen++]);
        if (Date.now() > until) throw new Error("no push arrived");
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },
    /** The app's service worker, reached from `page` (any page of the context, even a blank one). */
    async serviceWorker(page) {
      const cdp = await ctx.newCDPSession(page);
      const registrations = [];
      cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
      const trace = [];
      cdp.on("ServiceWorker.workerErrorReported", (e) => trace.push(`error: ${JSON.stringify(e.errorMessage)}`));
      let running = false;
      cdp.on("ServiceWorker.workerVersionUpdated", (e) => {
        trace.push(`versions: ${JSON.stringify(e.versions.map((v) => [v.registrationId, v.runningStatus, v.status]))}`);
        running = e.versions.some((v) => v.runningStatus === "running" && v.status === "activated");
      });
      await cdp.send("ServiceWorker.enable");
      const origin = new URL(appUrl).origin;
      for (let i = 0; !registrations.some((r) => r.scopeURL === `${origin}/` && !r.isDeleted); i++) {
        if (i > 100) throw new Error("the app registered no service worker");
        await new Promise((r) => setTimeout(r, 100));
      }
      const { registrationId } = registrations.find((r) => r.scopeURL === `${origin}/` && !r.isDeleted);
      return {
        /**
         * Hands `payload` to the service worker as its browser's push
         * channel would, and waits for the notification it shows; what that
         * says. (A delivery to a worker that is just stopping can be lost, as
         * the DevTools protocol gives no answer for it: it is handed over
         * again, at most twice more.)
         */
        async deliver(payload, pollMs = 100, waitMs = 5000) {
          for (let deliveries = 1; ; deliveries++) {
            // A push wakes a stopped service worker first, as the browser does.
            await cdp.send("ServiceWorker.startWorker", { scopeURL: `${origin}/` });
            for (let i = 0; !running && i < 50; i++) await new Promise((r) => setTimeout(r, 20));
            await cdp.send("ServiceWorker.deliverPushMessage", { origin, registrationId, data: JSON.stringify(payload) });
            const polls = ((deliveries < 3 ? waitMs : 3 * waitMs) / pollMs) | 0;
            const shown = await this.notifications(1, polls, pollMs, payload.message).catch((e) =>
              deliveries < 3 ? null : Promise.reject(e),
            );
            if (shown) return { shown, deliveries };
          }
        },
        /**
         * Waits for `n` notifications shown by the service worker (about
         * message `about`, if given; polls every `pollMs`); what each says.
         */
        async notifications(n, polls = 150, pollMs = 100, about = undefined) {
          for (let i = 0; ; i++) {
            const worker =
              ctx.serviceWorkers().find((w) => w.url() === `${origin}/sw.js`) ??
              (await ctx.waitForEvent("serviceworker", { timeout: 1000 }).catch(() => null));
            const shown = worker
              ? await worker.evaluate(async () =>
                  (await self.registration.getNotifications()).map((x) => ({
                    title: x.title,
                    body: x.body,
                    tag: x.tag,
                    requireInteraction: x.requireInteraction,
                    message: x.data?.message,
                  })),
                )
              : [];
            const matching = about === undefined ? shown : shown.filter((x) => x.message === about);
            if (matching.length >= n) return matching;
            if (i > polls) {
              throw new Error(
                `the service worker showed ${shown.length} notifications, not ${n}; workers ${JSON.stringify(ctx.serviceWorkers().map((w) => w.url()))}; ${trace.join("; ")}`,
              );
            }
            await new Promise((r) => setTimeout(r, pollMs));
          }
        },
      };
    },
  };
}
