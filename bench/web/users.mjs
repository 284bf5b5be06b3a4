// The console's Users screen with thousands of people (bench/src/console.rs):
// an administrator signs in and opens Users; then the time until the whole
// list is shown, until each search narrows it, and until rows are drawn
// after each jump of the scrollbar; with how many rows exist at once (the
// list is virtualised) and the tab's JavaScript heap. Prints one JSON
// result.
//
// {url, org, email, password, people, searches: [text…]}
import { launchChromium, trustTestCertificate } from "../../crates/wardline-server/tests/browser/lib.mjs";

const cfg = JSON.parse(process.argv[2]);
const percentile = (sorted, p) => sorted[Math.round((sorted.length - 1) * p)];
const summary = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p95: percentile(s, 0.95), max: s.at(-1) };
};

const browser = await launchChromium(trustTestCertificate());
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(cfg.url);
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(cfg.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  const nav = page.getByRole("navigation", { name: "Wardline" });
  await nav.getByRole("link", { name: "Users", exact: true }).waitFor({ timeout: 30000 });

  // Opening the screen: the list of everyone, fetched, decrypted and shown.
  const opened = performance.now();
  await nav.getByRole("link", { name: "Users", exact: true }).click();
  await page.getByText(`${cfg.people} people`, { exact: true }).waitFor({ timeout: 60000 });
  const openMs = performance.now() - opened;
  const status = page.getByRole("status").filter({ hasText: /people/ });

  // Each search: typed, until the count says what it found.
  const searchMs = [];
  for (const text of cfg.searches) {
    const before = await status.innerText();
    const t = performance.now();
    await page.getByLabel("Name or e-mail").fill(text);
    await page.waitForFunction(
      (before) => {
        const s = [...document.querySelectorAll('[role="status"]')].find((e) => /people/.test(e.textContent));
        return s && s.textContent !== before;
      },
      before,
      { timeout: 10000 },
    );
    searchMs.push(performance.now() - t);
    await page.getByLabel("Name or e-mail").fill("");
    await page.getByText(`${cfg.people} people`, { exact: true }).waitFor({ timeout: 10000 });
  }

  // Scrolling: jumps through the whole list, each until its rows are drawn.
  const scroll = await page.evaluate(async () => {
    const box = document.querySelector(".user-scroll");
    const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
    const out = [];
    let most = 0;
    for (let i = 1; i <= 40; i++) {
      const t = performance.now();
      box.scrollTop = (box.scrollHeight * i) / 41;
      await frame();
      await frame();
      out.push(performance.now() - t);
      most = Math.max(most, box.querySelectorAll('[role="row"]').length);
    }
    return { out, most };
  });
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null);
  console.log(
    JSON.stringify({
      people: cfg.people,
      openMs,
      search: summary(searchMs),
      scroll: summary(scroll.out),
      rowsAtOnce: scroll.most,
      heapMiB: heap === null ? null : heap / 1048576,
    }),
  );
} finally {
  await browser.close();
}
