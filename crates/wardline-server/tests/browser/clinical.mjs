// The clinical workflow in Debian's Chromium, as a night shift meets it: a
// nurse finds the cardiologist on call in the directory, pages "Cardiology
// on-call" STAT from her browser and follows the escalation ladder on her
// screen while nobody answers — re-alerted, then the backup brought in; the
// backup, who turned on notifications and closed Wardline, gets a push
// (through a real push service) that his service worker shows as "A message
// is waiting for your acknowledgement" and nothing more; it opens Wardline
// at the STAT, across the top of his screen, and he acknowledges it, which
// the nurse sees at once. She recalls a message sent
// about the wrong patient and is told who had read it. She searches the
// history on her device for a word written three days earlier, among ten
// thousand messages. The backup breaks the glass into another team's
// patient thread with a reason, under a banner, until it expires. The on-call physician uses the command line (the Rust
// test drives it, and the server's clock). Every screen is audited by
// axe-core and photographed. Prints one JSON line per step as it goes; waits
// for the test's signals where only the test can act. Called by
// tests/it/web_clinical.rs.
//
// {url, org, password, pin, screenshots, signals, pushService, role, stat, wrongPatient, cliReply, searchWord,
//  searchPartial, searchText, nurse: {email, name, codes}, backup: {email, name, codes}, oncall: {name}}
import { launchChromium, scriptRun, trustTestCertificate, usePushService, waitForSignal } from "./lib.mjs";

const { cfg, log, fail, problems, pages, audit, watch } = scriptRun("clinical.mjs", "clinical");

async function signIn(page, who) {
  await page.goto(cfg.url);
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(who.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  await page.getByLabel(/authenticator app/).fill(who.codes[0]);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 2, name: "Choose a PIN for this browser" }).waitFor({ timeout: 15000 });
  await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await page.getByLabel("PIN again").fill(cfg.pin);
  await page.getByRole("button", { name: "Set up this browser" }).click();
  await conversations(page).waitFor({ timeout: 30000 });
}

const conversations = (page) => page.getByRole("heading", { level: 2, name: "Conversations" });
const messages = (page) => page.getByRole("log", { name: "Messages" });
const nav = (page) => page.getByRole("navigation", { name: "Conversations" });
const inList = (page, name) => nav(page).getByRole("button", { name: new RegExp(name) });

const browser = await launchChromium(trustTestCertificate());
try {
  const viewport = { width: 1280, height: 900 };
  const nurseCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const backupCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const nurse = await nurseCtx.newPage();
  const pushes = await usePushService(backupCtx, cfg.url, cfg.pushService);
  let backup = await backupCtx.newPage();
  watch(nurse, "nurse");
  watch(backup, "backup");
  await signIn(nurse, cfg.nurse);
  await signIn(backup, cfg.backup);
  // The backup turns on notifications for when Wardline is closed (the
  // browser asks him; he allows it). The nurse is offered them too and
  // says "Not now".
  const offer = backup.getByRole("region", { name: "Pages when Wardline is closed" });
  await offer.waitFor({ timeout: 15000 });
  const nurseOffer = nurse.getByRole("region", { name: "Pages when Wardline is closed" });
  await nurseOffer.getByRole("button", { name: "Not now" }).click();
  await nurseOffer.waitFor({ state: "detached", timeout: 5000 });
  const offerText = await offer.innerText();
  await audit(backup, "push-offer");
  await backupCtx.grantPermissions(["notifications"], { origin: new URL(cfg.url).origin });
  await offer.getByRole("button", { name: "Turn on notifications" }).click();
  await offer.waitFor({ state: "detached", timeout: 15000 });
  if (!pushes.latest()) fail("turning notifications on made no push subscription");
  log("ready", { offer: offerText });

  // 1. Search over the history on this device. The test writes, from the
  // command line, one message, then (three days later by the server's
  // clock) ten thousand more; the nurse looks for a word of the first.
  const codes = await waitForSignal(cfg.signals, "seeded", 600000);
  // Three days later every session has ended: each signs in again, and the
  // PIN opens the browser's store as it was.
  for (const [page, who, code] of [
    [nurse, cfg.nurse, codes.nurse],
    [backup, cfg.backup, codes.backup],
  ]) {
    await page.getByRole("heading", { level: 1, name: "Sign in" }).waitFor({ timeout: 60000 });
    await page.getByLabel("Organisation").fill(cfg.org);
    await page.getByLabel("E-mail").fill(who.email);
    await page.getByLabel("Password").fill(cfg.password);
    await page.keyboard.press("Enter");
    await page.getByLabel(/authenticator app/).fill(code);
    await page.keyboard.press("Enter");
    await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
    await page.getByRole("button", { name: "Unlock" }).click();
    await conversations(page).waitFor({ timeout: 30000 });
  }
  await inList(nurse, "Ward 7 handover").waitFor({ timeout: 60000 });
  const search = async (q) => {
    await nav(nurse).getByRole("searchbox", { name: "Search messages" }).fill(q);
    await nav(nurse).getByRole("button", { name: "Search", exact: true }).click();
    await nurse.getByRole("heading", { level: 2, name: `Messages with “${q}”` }).waitFor({ timeout: 15000 });
    const status = nurse.locator("p[data-took-ms]");
    await status.waitFor({ timeout: 15000 });
    return { hits: nurse.locator("ol.found > li"), tookMs: Number(await status.getAttribute("data-took-ms")) };
  };
  // Everything arrived: the newest filler is found.
  for (let i = 0; ; i++) {
    const r = await search(cfg.lastFiller);
    if ((await r.hits.count()) > 0) break;
    if (i > 120) fail("the seeded messages did not all arrive");
    await nurse.waitForTimeout(1000);
  }
  const { hits, tookMs } = await search(cfg.searchWord);
  const found = { count: await hits.count(), first: await hits.first().innerText().catch(() => ""), tookMs };
  const { hits: partial } = await search(cfg.searchPartial);
  found.partialCount = await partial.count();
  await audit(nurse, "search-results");
  await partial.first().getByRole("button").click();
  const at = messages(nurse).locator("li.found");
  await at.waitFor({ timeout: 15000 });
  found.opened = await at.innerText();
  found.focused = await at.evaluate((el) => el === document.activeElement);
  await audit(nurse, "search-opened");
  log("search", found);

  // 2. The directory: who covers cardiology tonight, and their status.
  await nav(nurse).getByRole("button", { name: "Directory" }).click();
  await nurse.getByLabel("Name, role, department or team").fill("cardiology");
  await nurse.getByRole("button", { name: "Find" }).click();
  const entries = nurse.getByRole("list", { name: "Colleagues found" });
  await entries.waitFor({ timeout: 15000 });
  const directory = await entries.innerText();
  await audit(nurse, "directory");
  log("directory", { directory });

  // The backup says he is busy (pages still reach someone busy).
  await backup.getByRole("button", { name: "Change status" }).click();
  await backup.getByLabel("Status", { exact: true }).selectOption("busy");
  await audit(backup, "presence");
  await backup.getByRole("button", { name: "Save status" }).click();
  await backup.locator(".presence strong", { hasText: "Busy" }).waitFor();
  log("presence", { shown: await backup.locator(".presence").innerText() });

  // The backup closes Wardline: from now on only a push can reach him.
  await backup.close();
  const idle = await backupCtx.newPage();
  const sw = await pushes.serviceWorker(idle);

  // 3. The nurse pages the role by name (autocompleted), STAT.
  await nav(nurse).getByRole("button", { name: "Page a role" }).click();
  await nurse.getByRole("heading", { level: 2, name: "Page a role" }).waitFor();
  // The roles to choose from come from the directory: wait for them.
  await nurse.locator("#page-roles option").first().waitFor({ state: "attached", timeout: 15000 });
  const offered = await nurse.locator("#page-roles option").evaluateAll((o) => o.map((x) => x.value));
  await nurse.getByLabel("Role", { exact: true }).fill(cfg.role);
  await nurse.getByLabel("Message", { exact: true }).fill(cfg.stat);
  await audit(nurse, "page-form");
  await nurse.getByRole("button", { name: "Page", exact: true }).click();
  const notice = nurse.locator(".page-notice");
  await notice.waitFor({ timeout: 30000 });
  const ladder = messages(nurse).locator("li.mine", { hasText: cfg.stat }).locator(".ladder");
  await ladder.getByText("Waiting for acknowledgement").waitFor({ timeout: 30000 });
  const paged = { offered, notice: await notice.innerText(), ladder: await ladder.innerText() };
  await audit(nurse, "paged");
  log("paged", paged);

  // 4. Nobody answers: the test moves the clock through two steps of the
  // ladder. The nurse's screen shows each as it happens.
  const { stat: statId } = await waitForSignal(cfg.signals, "escalated");
  await ladder.getByText(/Alerted again/).waitFor({ timeout: 30000 });
  await ladder.getByText(new RegExp(`Backup brought in: ${cfg.backup.name}`)).waitFor({ timeout: 30000 });
  const escalated = await ladder.innerText();
  await audit(nurse, "escalated");
  log("escalated", { ladder: escalated });

  // 5. The backup, whose Wardline is closed, was pushed to when the ladder
  // brought him in: the push service holds it (decrypted, as his browser
  // would), his service worker shows it — saying only what kind of thing
  // waits — and a click on it opens Wardline at that message.
  const pushStarted = Date.now();
  const payload = await pushes.next();
  if (payload.kind !== "waiting" || payload.message !== statId || Object.keys(payload).length !== 3 || payload.v !== 1) {
    fail(`unexpected push ${JSON.stringify(payload)}`);
  }
  const { shown, deliveries } = await sw.deliver(payload);
  const pushed = {
    payload,
    notification: shown[0],
    deliveries,
    ms: Date.now() - pushStarted,
    tabs: backupCtx.pages().map((p) => p.url()),
  };
  log("pushed", pushed);
  backup = await backupCtx.newPage();
  watch(backup, "backup");
  await backup.goto(`${cfg.url}#alert=${shown[0].message}`);
  await backup.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await backup.getByRole("button", { name: "Unlock" }).click();
  await messages(backup).locator("li.found", { hasText: cfg.stat }).waitFor({ timeout: 30000 });
  await idle.close();

  // The backup's screen: the STAT across the top, wherever he is.
  const banner = backup.getByRole("region", { name: "Needs acknowledgement" });
  await banner.getByText(new RegExp(`STAT from ${cfg.nurse.name}`)).waitFor({ timeout: 30000 });
  const bannerText = await banner.innerText();
  await audit(backup, "needs-acknowledgement");
  await banner.getByRole("button", { name: "Acknowledge" }).click();
  await banner.waitFor({ state: "detached", timeout: 15000 });
  // The nurse sees who acknowledged, without reloading.
  await ladder.getByText(new RegExp(`Acknowledged by ${cfg.backup.name}`)).first().waitFor({ timeout: 30000 });
  const acknowledged = await ladder.innerText();
  await audit(nurse, "acknowledged");
  // The backup opens the conversation: the message says it was acknowledged.
  await inList(backup, `Page: ${cfg.role}`).first().click();
  await messages(backup).getByText(cfg.stat).waitFor({ timeout: 15000 });
  const backupSees = await messages(backup).locator("li.theirs", { hasText: cfg.stat }).innerText();
  await audit(backup, "acknowledged-thread");
  log("acknowledged", { banner: bannerText, ladder: acknowledged, backupSees });

  // 6. A message about the wrong patient: read by the backup (on screen)
  // and answered from the command line, then recalled by the nurse.
  await nurse.getByRole("textbox", { name: "Message" }).fill(cfg.wrongPatient);
  await nurse.getByRole("button", { name: "Send" }).click();
  await messages(backup).getByText(cfg.wrongPatient).waitFor({ timeout: 30000 });
  await messages(nurse).getByText(cfg.cliReply).waitFor({ timeout: 60000 });
  const wrong = messages(nurse).locator("li.mine", { hasText: cfg.wrongPatient });
  await wrong.locator(".receipts > p").filter({ hasText: new RegExp(`Read by .*${cfg.backup.name}`) }).waitFor({ timeout: 30000 });
  await wrong.getByRole("button", { name: /^Recall/ }).click();
  await audit(nurse, "recall-confirm");
  await wrong.getByRole("button", { name: "Recall from every device" }).click();
  const outcome = messages(nurse).locator(".recalled");
  await outcome.waitFor({ timeout: 30000 }).catch(() => {});
  // The item itself now says "Recalled" (its content is gone here too).
  await messages(nurse).getByText("Recalled", { exact: true }).first().waitFor({ timeout: 30000 });
  await messages(backup).getByText(cfg.wrongPatient).waitFor({ state: "detached", timeout: 30000 });
  const backupAfter = await messages(backup).innerText();
  await audit(nurse, "recalled");
  log("recalled", { outcome: (await outcome.count()) ? await outcome.innerText() : null, backupAfter });

  // 6b. Disappearing messages: one that lives five minutes; then the
  // conversation's own lifespan, an hour, for every message after.
  await nurse.getByRole("textbox", { name: "Message" }).fill(cfg.ephemeral);
  await nurse.getByLabel("Disappears", { exact: true }).selectOption("300");
  await nurse.getByRole("button", { name: "Send" }).click();
  const eph = messages(backup).locator("li.theirs", { hasText: cfg.ephemeral });
  await eph.waitFor({ timeout: 30000 });
  const ephemeralMeta = await eph.locator(".meta").innerText();
  await nurse.getByText("Disappearing messages", { exact: true }).click();
  await nurse.getByLabel("Messages here disappear").selectOption("3600");
  await nurse.getByRole("button", { name: "Save", exact: true }).click();
  await nurse.getByText("Saved: it applies to messages sent from now on.").waitFor({ timeout: 15000 });
  const lifespanNote = await nurse.locator("p.note", { hasText: "disappear" }).innerText();
  await audit(nurse, "lifespan");
  await nurse.getByRole("textbox", { name: "Message" }).fill(cfg.afterLifespan);
  await nurse.getByRole("button", { name: "Send" }).click();
  const later = messages(backup).locator("li.theirs", { hasText: cfg.afterLifespan });
  await later.waitFor({ timeout: 30000 });
  log("disappearing", { ephemeralMeta, lifespanNote, laterMeta: await later.locator(".meta").innerText() });

  // 7. Break-glass: Ben is not on the bed 4 team. Opening the patient
  // asks him why; with a reason he is in, for a limited time, under a
  // banner; the team's recent messages reach him from a member's device.
  await nav(backup).getByRole("button", { name: "Open a patient" }).click();
  await backup.getByLabel("Patient reference").fill(cfg.patient);
  await backup.getByRole("button", { name: "Open", exact: true }).click();
  await backup.getByRole("heading", { level: 3, name: "Break the glass" }).waitFor({ timeout: 15000 });
  const asked = await backup.locator("form.break-glass").innerText();
  await audit(backup, "break-glass-reason");
  await backup.getByLabel("Why do you need access now?").fill(cfg.breakGlassReason);
  await backup.getByRole("button", { name: "Break the glass" }).click();
  const threads = backup.getByRole("list", { name: "Patient's threads" });
  await threads.waitFor({ timeout: 30000 });
  const glass = backup.getByRole("region", { name: "Break-glass access" });
  await glass.waitFor({ timeout: 30000 });
  await audit(backup, "break-glass-open");
  log("broke_glass", { asked, threads: await threads.innerText(), banner: await glass.innerText() });
  await threads.getByRole("button", { name: /^Open / }).first().click();
  await messages(backup).getByText(cfg.patientMessage).waitFor({ timeout: 60000 });
  await audit(backup, "break-glass-thread");
  log("patient_thread", { shown: await messages(backup).innerText() });
  // The grant runs out (the test moves the clock): the banner goes, and
  // the thread says he is no longer in it.
  const { sharedCode, sharedCode2 } = await waitForSignal(cfg.signals, "expired");
  await glass.waitFor({ state: "detached", timeout: 60000 });
  await backup.getByText("You are no longer in this conversation.").waitFor({ timeout: 60000 });
  await audit(backup, "break-glass-expired");
  // Five minutes on, the disappearing message is gone from both browsers.
  await messages(nurse).getByText(cfg.ephemeral).waitFor({ state: "detached", timeout: 90000 });
  await inList(backup, `Page: ${cfg.role}`).first().click();
  await messages(backup).getByText(cfg.afterLifespan).waitFor({ timeout: 15000 });
  await messages(backup).getByText(cfg.ephemeral).waitFor({ state: "detached", timeout: 90000 });
  log("expired", { listed: await backup.locator("body").innerText() });

  // 8. The link an escalation text carries, opened in the backup's browser
  // (a reload: the PIN opens it again) leads to that message; the address
  // keeps no trace of it.
  await backup.goto(`${cfg.url}alerts/${statId}`);
  await backup.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await backup.getByRole("button", { name: "Unlock" }).click();
  const linked = messages(backup).locator("li.found");
  await linked.waitFor({ timeout: 30000 });
  await audit(backup, "alert-link");
  log("alert_link", { address: backup.url(), shown: await linked.innerText() });

  // 9. A shared computer on the ward: the nurse says so at sign-in; her
  // sign-out removes the browser from her devices and erases its store.
  const wardCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const sharedSignIn = async (page, code) => {
    await page.goto(cfg.url);
    await page.getByLabel("Organisation").fill(cfg.org);
    await page.getByLabel("E-mail").fill(cfg.nurse.email);
    await page.getByLabel("Password").fill(cfg.password);
    await page.getByLabel(/This is a shared computer/).check();
    await audit(page, "shared-sign-in");
    await page.keyboard.press("Enter");
    await page.getByLabel(/authenticator app/).fill(code);
    await page.keyboard.press("Enter");
    await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
    await page.getByLabel("PIN again").fill(cfg.pin);
    await page.getByRole("button", { name: "Set up this browser" }).click();
    await conversations(page).waitFor({ timeout: 30000 });
  };
  // First she closes the tab instead of signing out: the next person to
  // open Wardline there finds nothing of hers, and is told why.
  const first = await wardCtx.newPage();
  watch(first, "shared computer, tab closed");
  await sharedSignIn(first, sharedCode);
  const leftStore = await first.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  const leftDevice = await first.evaluate(() => localStorage.getItem("wardline.device"));
  await first.close();
  const ward = await wardCtx.newPage();
  watch(ward, "shared computer");
  await ward.goto(cfg.url);
  const erasedNotice = ward.getByRole("status").filter({ hasText: "without signing out" });
  await erasedNotice.waitFor({ timeout: 15000 });
  await audit(ward, "shared-left-behind");
  log("shared_left_behind", {
    leftStore,
    notice: await erasedNotice.innerText(),
    databases: await ward.evaluate(async () => (await indexedDB.databases()).map((d) => d.name)),
    sameDevice: (await ward.evaluate(() => localStorage.getItem("wardline.device"))) === leftDevice,
  });
  // Then she signs in there again, and signs out.
  await sharedSignIn(ward, sharedCode2);
  const sharedNote = await ward.locator("p.note", { hasText: "Shared computer" }).innerText();
  // A shared computer is never offered notifications (they would outlive the session).
  const sharedOffered = await ward.getByRole("region", { name: "Pages when Wardline is closed" }).count();
  // A new device of hers: her other browser shares its recent messages again.
  await inList(ward, `Page: ${cfg.role}`).first().click({ timeout: 60000 });
  await messages(ward).getByText(cfg.afterLifespan).waitFor({ timeout: 60000 });
  const sharedDevice = await ward.evaluate(() => localStorage.getItem("wardline.device"));
  const hadStore = await ward.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  await audit(ward, "shared-open");
  await ward.getByRole("button", { name: "Sign out", exact: true }).click();
  await ward.getByRole("heading", { level: 1, name: "Sign in" }).waitFor({ timeout: 30000 });
  const left = await ward.evaluate(async () => ({
    databases: (await indexedDB.databases()).map((d) => d.name),
    caches: await caches.keys(),
    serviceWorkers: (await navigator.serviceWorker.getRegistrations()).length,
    deviceId: localStorage.getItem("wardline.device"),
  }));
  log("shared_signed_out", { sharedNote, sharedOffered, sharedDevice, hadStore, left });

  if (problems.length) fail(problems.join("\n"));
} catch (e) {
  const shown = [];
  for (const p of pages) shown.push(await p.locator("body").innerText().catch(() => ""));
  fail(`${e.stack ?? e}\npages: ${JSON.stringify(shown)}\n${problems.join("\n")}`);
} finally {
  await browser.close();
}
