// Web Push latency (bench/src/push.rs): a browser signs in, turns on
// notifications and closes Wardline; then for each STAT message the bench
// sends, the time until the local push service (web-push-testing) holds the
// push — encrypted by the server, VAPID checked and decrypted by the service
// — and until the browser's service worker shows its notification (the push
// handed to it over the DevTools protocol, as in tests/browser/clinical.mjs).
// Reads `{"message": id, "sent": epoch ms}` lines on stdin, then `end`;
// prints `{"step":"ready"}` once set up and one JSON result at the end.
//
// {url, org, password, pin, email, pushService}
import { createInterface } from "node:readline";
import { launchChromium, trustTestCertificate, usePushService } from "../../crates/wardline-server/tests/browser/lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const percentile = (sorted, p) => sorted[Math.round((sorted.length - 1) * p)];

const browser = await launchChromium(trustTestCertificate());
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const pushes = await usePushService(ctx, cfg.url, cfg.pushService);
  const page = await ctx.newPage();
  await page.goto(cfg.url);
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(cfg.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await page.getByLabel("PIN again").fill(cfg.pin);
  await page.getByRole("button", { name: "Set up this browser" }).click();
  const offer = page.getByRole("region", { name: "Pages when Wardline is closed" });
  await offer.waitFor({ timeout: 30000 });
  await ctx.grantPermissions(["notifications"], { origin: new URL(cfg.url).origin });
  await offer.getByRole("button", { name: "Turn on notifications" }).click();
  await offer.waitFor({ state: "detached", timeout: 15000 });
  await page.close();
  const idle = await ctx.newPage();
  const sw = await pushes.serviceWorker(idle);
  console.log(JSON.stringify({ step: "ready" }));

  const sent = new Map();
  let ended = false;
  (async () => {
    for await (const line of createInterface({ input: process.stdin })) {
      if (line === "end") ended = true;
      else {
        const m = JSON.parse(line);
        sent.set(m.message, m.sent);
      }
    }
  })();
  const atService = [];
  const shown = [];
  let deliveries = 0;
  const wrong = [];
  // The push service is watched on its own (every 5 ms), so that a push is
  // stamped when it gets there, whatever the hand-overs are doing.
  const arrived = [];
  let progress = Date.now();
  const watcher = (async () => {
    while (!(ended && atService.length + arrived.length >= sent.size)) {
      const payload = await pushes.next(1000, 5).catch(() => null);
      if (!payload) {
        if (Date.now() - progress > 60000) throw new Error(`no push for a minute; ${atService.length} of ${sent.size} arrived`);
        continue;
      }
      progress = Date.now();
      if (payload.kind === "stat") arrived.push({ payload, at: Date.now() }); // not an escalation's reminder
    }
  })();
  const handed = (async () => {
    while (!(ended && atService.length >= sent.size)) {
      const next = arrived.shift();
      if (!next) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      const { payload, at } = next;
      if (Object.keys(payload).length !== 3) wrong.push(payload);
      const r = await sw.deliver(payload, 5, 1000);
      const shownAt = Date.now();
      deliveries += r.deliveries;
      // The bench's line for it may come just after the push.
      for (let i = 0; !sent.has(payload.message) && i < 200; i++) await new Promise((res) => setTimeout(res, 5));
      const t = sent.get(payload.message);
      if (t === undefined) throw new Error(`a push for a message the bench did not send: ${JSON.stringify(payload)}`);
      atService.push(at - t);
      shown.push(shownAt - t);
      if (process.env.PUSH_BENCH_TRACE) {
        console.error(`${atService.length}: at the service ${at - t} ms, shown ${shownAt - t} ms (${r.deliveries} hand-overs)`);
      }
      if (r.shown[0].title !== "New STAT message") wrong.push(r.shown[0]);
    }
  })();
  await Promise.all([watcher, handed]);
  if (wrong.length) throw new Error(`unexpected pushes or notifications: ${JSON.stringify(wrong)}`);
  atService.sort((a, b) => a - b);
  shown.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      pushes: shown.length,
      deliveries,
      service_p50_ms: percentile(atService, 0.5),
      service_p99_ms: percentile(atService, 0.99),
      shown_p50_ms: percentile(shown, 0.5),
      shown_p99_ms: percentile(shown, 0.99),
      shown_max_ms: shown.at(-1),
    }),
  );
} finally {
  await browser.close();
}
