// The web app's figures in headless Chromium (bench/src/web.rs runs this
// with one JSON argument and reads one JSON object from stdout):
// cold load, bytes transferred, device set-up, PIN unlock, and browser →
// browser delivery latency at a steady rate.
//
// {url, org, password, users: [2], names: [2], pin, messages, rate}
import { launchChromium } from "../../crates/wardline-server/tests/browser/lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const out = {};

function percentile(sorted, p) {
  return sorted[Math.round((sorted.length - 1) * p)];
}

/**
 * Bytes as sent (encoded: gzipped when the server gzipped) of every
 * response in a browser context, the worker's (the wasm) included.
 */
function meter(ctx) {
  const sizes = [];
  ctx.on("requestfinished", async (req) => {
    const s = await req.sizes().catch(() => null);
    if (s) sizes.push({ url: req.url(), bytes: s.responseBodySize + s.responseHeadersSize });
  });
  return sizes;
}

async function signIn(page, email) {
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Wardline" }).waitFor({ timeout: 30000 });
}

const conversations = (page) => page.getByRole("heading", { level: 2, name: "Conversations" });

const browser = await launchChromium();
try {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const sizes = meter(ctx);
    const page = await ctx.newPage();
    // Cold load: a fresh profile, nothing cached, to a sign-in form that takes input.
    const t0 = Date.now();
    await page.goto(cfg.url);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    if (i === 0) {
      out.load_ms = Date.now() - t0;
      out.load_kb = sizes.reduce((a, s) => a + s.bytes, 0) / 1000;
    }
    await signIn(page, cfg.users[i]);
    await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
    await page.getByLabel("PIN again").fill(cfg.pin);
    const t1 = Date.now();
    await page.getByRole("button", { name: "Set up this browser" }).click();
    await conversations(page).waitFor({ timeout: 60000 });
    if (i === 0) {
      out.create_ms = Date.now() - t1;
      out.app_kb =
        sizes.filter((s) => /\.(js|wasm|css)$/.test(new URL(s.url).pathname)).reduce((a, s) => a + s.bytes, 0) / 1000;
    }
    pages.push(page);
  }
  const [a, b] = pages;

  // PIN unlock after a reload (the second user).
  await b.reload();
  await signIn(b, cfg.users[1]);
  await b.getByRole("heading", { level: 2, name: "Unlock" }).waitFor();
  await b.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  const t2 = Date.now();
  await b.getByRole("button", { name: "Unlock" }).click();
  await conversations(b).waitFor({ timeout: 60000 });
  out.unlock_ms = Date.now() - t2;

  // A conversation between the two, open in both.
  await a.getByRole("button", { name: "New conversation" }).click();
  await a.getByLabel(cfg.names[1]).check();
  await a.getByRole("button", { name: "Start" }).click();
  const box = a.getByRole("textbox", { name: "Message" });
  await box.waitFor();
  const item = b.getByRole("button", { name: new RegExp(cfg.names[0]) });
  await item.waitFor({ timeout: 30000 });
  await item.click();
  await b.getByRole("textbox", { name: "Message" }).waitFor();

  // Arrivals stamped in the receiving page as each message is added.
  await b.evaluate(() => {
    window.__arrived = {};
    new MutationObserver(() => {
      for (const p of document.querySelectorAll("li.theirs p.text")) {
        const t = p.textContent;
        if (t && t.startsWith("bench ") && !(t in window.__arrived)) window.__arrived[t] = Date.now();
      }
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
  // When each submission's response ended (sender's worker), to split the
  // latency into sending and receiving.
  const posted = [];
  a.context().on("requestfinished", (req) => {
    if (req.method() === "POST" && /\/messages$/.test(new URL(req.url()).pathname)) {
      const t = req.timing();
      posted.push(t.startTime + t.responseEnd);
    }
  });
  const sent = {};
  const interval = 1000 / cfg.rate;
  const start = Date.now();
  for (let i = 0; i < cfg.messages; i++) {
    const due = start + i * interval;
    if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
    const text = `bench ${i}`;
    await box.fill(text);
    sent[text] = Date.now();
    await box.press("Enter");
    // The composer empties once the worker has taken the message.
    await a.waitForFunction(() => document.querySelector("#text")?.value === "", null, { timeout: 30000 });
  }
  out.send_secs = (Date.now() - start) / 1000;
  await b.waitForFunction((n) => Object.keys(window.__arrived).length >= n, cfg.messages, { timeout: 60000 });
  const arrived = await b.evaluate(() => window.__arrived);
  const lat = Object.keys(sent)
    .map((t) => arrived[t] - sent[t])
    .sort((x, y) => x - y);
  const sendTimes = Object.values(sent).sort((x, y) => x - y);
  const toPosted = posted
    .slice(-sendTimes.length)
    .map((p, i) => p - sendTimes[i])
    .sort((x, y) => x - y);
  out.posted_p50_ms = percentile(toPosted, 0.5);
  out.p50_ms = percentile(lat, 0.5);
  out.p99_ms = percentile(lat, 0.99);
  out.max_ms = lat[lat.length - 1];
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
