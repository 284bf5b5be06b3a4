// The web app's figures in headless Chromium (bench/src/web.rs runs this
// with one JSON argument): cold load, bytes transferred, device set-up, PIN
// unlock, and browser → browser delivery latency at a steady rate — in a
// conversation of the two browsers, or of many members of which the others
// are simulated by the load generator (then with a long history, if asked:
// the tab's memory with it open).
//
// {url, org, password, users: [2], names: [2], pin, messages, rate}
//
// Talks to the load generator by lines of JSON: prints {"ready": true} once
// both browsers are devices, reads {"conversation": title | null} (null:
// the first browser starts one with the second; otherwise the generator
// made it and filled it with `history` messages), prints the result last.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { launchChromium } from "../../crates/wardline-server/tests/browser/lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const out = {};
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

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

/**
 * Collects garbage in every page and worker (Chromium runs with
 * `--expose-gc`), so that what is measured is what the tab keeps, not what
 * it has not collected yet.
 */
async function collect(pages) {
  for (const page of pages) {
    await page.evaluate(() => globalThis.gc?.());
    for (const w of page.workers()) await w.evaluate(() => globalThis.gc?.());
  }
}

/**
 * The private memory (MB: Private_Clean + Private_Dirty of
 * /proc/<pid>/smaps_rollup, on this machine) of the browser's largest
 * renderer process — a tab's page and its worker live in one. Private, not
 * resident: the resident set also counts the Chromium binary and libraries
 * every process shares (about 50 MB here).
 */
async function largestRenderer(browser) {
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send("SystemInfo.getProcessInfo");
  await cdp.detach();
  let most = 0;
  for (const p of processInfo.filter((p) => p.type === "renderer")) {
    let rollup = "";
    try {
      rollup = readFileSync(`/proc/${p.id}/smaps_rollup`, "utf8");
    } catch {
      continue;
    }
    const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(rollup)?.[1] ?? 0);
    const mb = (kb("Private_Clean") + kb("Private_Dirty")) / 1024;
    most = Math.max(most, mb);
    if (process.env.BENCH_VERBOSE) console.error(`renderer ${p.id}: ${mb.toFixed(0)} MB private, ${(kb("Rss") / 1024).toFixed(0)} MB resident`);
  }
  return most;
}

const conversations = (page) => page.getByRole("heading", { level: 2, name: "Conversations" });

const browser = await launchChromium(["--js-flags=--expose-gc"]);
try {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const sizes = meter(ctx);
    const page = await ctx.newPage();
    // Faults go to stderr (the generator shows them): a bench that stalls says why.
    page.on("console", (m) => m.type() === "error" && console.error(`browser ${i}: ${m.text()}`));
    page.on("pageerror", (e) => console.error(`browser ${i} page error: ${e.stack}`));
    page.on("worker", (w) => w.on("console", (m) => m.type() === "error" && console.error(`browser ${i} worker: ${m.text()}`)));
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

  // PIN unlock after a reload (the second user): the session is kept,
  // sealed in the store, so the PIN alone opens it.
  await b.reload();
  await b.getByRole("heading", { level: 1, name: "Unlock" }).waitFor({ timeout: 30000 });
  await b.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  const t2 = Date.now();
  await b.getByRole("button", { name: "Unlock", exact: true }).click();
  await conversations(b).waitFor({ timeout: 60000 });
  out.unlock_ms = Date.now() - t2;

  console.log(JSON.stringify({ ready: true }));
  const { conversation } = JSON.parse((await lines.next()).value);
  input.close();
  const box = a.getByRole("textbox", { name: "Message" });
  const inList = (page, name) =>
    page.getByRole("navigation", { name: "Conversations" }).getByRole("button", { name: new RegExp(name) });
  if (conversation === null) {
    // A conversation between the two, open in both.
    await a.getByRole("button", { name: "New conversation" }).click();
    await a.getByLabel(cfg.names[1]).check();
    await a.getByRole("button", { name: "Start" }).click();
    await box.waitFor();
    await inList(b, cfg.names[0]).waitFor({ timeout: 30000 });
    await inList(b, cfg.names[0]).click();
  } else {
    // The generator's conversation, with its history: every message has
    // reached both browsers (live, over their sockets) once the list says so.
    const t3 = Date.now();
    for (const page of [a, b]) {
      await inList(page, `^${conversation}`).waitFor({ timeout: 600000 });
      // Looked at every second (progress every 30 s, to stderr).
      for (let waited = 0; cfg.history > 0; waited++) {
        const label = await inList(page, `^${conversation}`).innerText();
        const unread = Number(/(\d+) unread/.exec(label)?.[1] ?? 0);
        if (unread >= cfg.history) break;
        if (waited >= 1200) throw new Error(`the history did not arrive: ${label}`);
        if (waited % 30 === 0) console.error(`bench: ${unread} of ${cfg.history} messages in browser ${page === a ? 0 : 1}`);
        await page.waitForTimeout(1000);
      }
    }
    out.history_ms = Date.now() - t3;
    await inList(a, `^${conversation}`).click();
    await box.waitFor();
    const t4 = Date.now();
    await inList(b, `^${conversation}`).click();
    if (cfg.history > 0) {
      await b.getByText(`history ${cfg.history - 1}`, { exact: true }).waitFor({ timeout: 120000 });
    }
    out.open_ms = Date.now() - t4;
    if (cfg.history > 0) {
      // Search over the history on the device (issue 22): a whole word, a
      // partial one, one that is nowhere; the worker's own time (the
      // results' data-took-ms) and Enter → the results on screen. Each
      // query five times; the median.
      const searchBox = b.getByRole("searchbox", { name: "Search messages" });
      const runs = { worker: [], screen: [] };
      for (const q of [`history ${cfg.history - 7}`, "istor", "nowhere-at-all"]) {
        for (let i = 0; i < 5; i++) {
          await searchBox.fill(q);
          const t5 = Date.now();
          await searchBox.press("Enter");
          const status = b.locator("p[data-took-ms]");
          await status.waitFor({ timeout: 30000 });
          runs.screen.push(Date.now() - t5);
          runs.worker.push(Number(await status.getAttribute("data-took-ms")));
          await b.getByRole("button", { name: "Close search" }).click();
        }
      }
      const median = (xs) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
      out.search_worker_ms = median(runs.worker);
      out.search_screen_ms = median(runs.screen);
      out.search_worker_max_ms = Math.max(...runs.worker);
      await inList(b, `^${conversation}`).click();
    }
  }
  await b.getByRole("textbox", { name: "Message" }).waitFor();
  // The tab's memory (page and worker share its renderer process): the
  // largest renderer's resident set, read from /proc on this machine.
  out.renderer_mb = await largestRenderer(browser);
  await collect([a, b]);
  out.renderer_gc_mb = await largestRenderer(browser);
  out.page_heap_mb = (await b.evaluate(() => performance.memory?.usedJSHeapSize ?? 0)) / 1e6;

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
  out.renderer_after_mb = await largestRenderer(browser);
  await collect([a, b]);
  out.renderer_after_gc_mb = await largestRenderer(browser);
  // The size of the sealed state each write stores (the receiving device's).
  out.record_kb =
    (await b.evaluate(
      () =>
        new Promise((resolve) => {
          const r = indexedDB.open("wardline");
          r.onsuccess = () => {
            const all = r.result.transaction("devices").objectStore("devices").getAll();
            all.onsuccess = () => resolve(Math.max(0, ...all.result.map((x) => x.sealed.length)));
          };
        }),
    )) / 1000;
  if (process.env.BENCH_VERBOSE) {
    await new Promise((r) => setTimeout(r, 15000));
    out.renderer_idle_mb = await largestRenderer(browser);
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
