// Two clinicians chat end-to-end encrypted in Debian's Chromium, as they
// would on a shift: a nurse and a physician each sign in, choose a PIN for
// their browser, and exchange messages in a patient thread (one urgent) that
// arrive without reloading, with a third member on the command line (the
// Rust test drives it) who answers; the physician reloads and needs the PIN again (a
// wrong one opens nothing); the nurse opens a second tab, which must take
// the device over rather than fork it, and the conversation goes on from
// there; left alone, the app locks and the PIN opens it again; finally an
// administrator wipes the physician's browser, which
// erases its store and signs out. Every screen is audited by axe-core and photographed. Prints one
// JSON line per step, and at the end what each browser's IndexedDB holds
// (for the Rust side to search for plaintext). Called by
// tests/it/web_app.rs.
//
// {url, org, password, pin, wrongPin, patientRef, screenshots, texts: [7], adminToken, idleSecs,
//  cli: {name, reply}, nurse: {email, name, codes: [2]}, physician: {email, name, codes: [2]}}
import { readFileSync } from "node:fs";
import { launchChromium, scriptRun, signIn as signInAs } from "./lib.mjs";

const { cfg, log, fail, problems, pages, audit, watch } = scriptRun("chat.mjs", "chat");

const signIn = (page, who, code) => signInAs(page, cfg, who, code);

const conversations = (page) => page.getByRole("heading", { level: 2, name: "Conversations" });
const messages = (page) => page.getByRole("log", { name: "Messages" });
/** A conversation in the list, by (part of) its name. */
const inList = (page, name) =>
  page.getByRole("navigation", { name: "Conversations" }).getByRole("button", { name: new RegExp(name) });

async function send(page, text, priority, files = []) {
  await page.getByRole("textbox", { name: "Message" }).fill(text);
  if (files.length) await page.getByLabel("Attach files").setInputFiles(files);
  await page.getByLabel("Priority").selectOption(priority);
  await page.getByRole("button", { name: "Send" }).click();
  await messages(page).getByText(text).waitFor({ timeout: 15000 });
  // Sent, not waiting in the outbox.
  await page.locator("li.unsent").waitFor({ state: "detached", timeout: 15000 });
}

/**
 * A JPEG as a phone camera writes it: an EXIF block (APP1) naming the camera
 * and the place it was taken. The picture itself is drawn in a blank page.
 */
async function photoWithExif(context) {
  const scratch = await context.newPage();
  const dataUrl = await scratch.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = 96;
    c.height = 64;
    const g = c.getContext("2d");
    g.fillStyle = "#c04040";
    g.fillRect(0, 0, 96, 64);
    g.fillStyle = "#f0e0d0";
    g.fillRect(24, 16, 48, 32);
    return c.toDataURL("image/jpeg", 0.9);
  });
  await scratch.close();
  const jpeg = Buffer.from(dataUrl.split(",")[1], "base64");
  // TIFF (little-endian), one IFD with two ASCII entries: Make and ImageDescription.
  const make = Buffer.from(`${cfg.exifMarker}\0`);
  const where = Buffer.from("GPS 51.5072N 0.1276W\0");
  const ifdAt = 8;
  const values = ifdAt + 2 + 2 * 12 + 4;
  const tiff = Buffer.alloc(values + make.length + where.length);
  tiff.write("II", 0, "latin1");
  tiff.writeUInt16LE(42, 2);
  tiff.writeUInt32LE(ifdAt, 4);
  tiff.writeUInt16LE(2, ifdAt);
  const entry = (i, tag, value, offset) => {
    const at = ifdAt + 2 + i * 12;
    tiff.writeUInt16LE(tag, at);
    tiff.writeUInt16LE(2, at + 2);
    tiff.writeUInt32LE(value.length, at + 4);
    tiff.writeUInt32LE(offset, at + 8);
    value.copy(tiff, offset);
  };
  entry(0, 0x010e, where, values + make.length);
  entry(1, 0x010f, make, values);
  tiff.writeUInt32LE(0, ifdAt + 2 + 2 * 12);
  const payload = Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
  const app1 = Buffer.alloc(4);
  app1.writeUInt16BE(0xffe1, 0);
  app1.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), app1, payload, jpeg.subarray(2)]);
}

/** What the browser saved when the person pressed `button`. */
async function saved(page, button) {
  const [download] = await Promise.all([page.waitForEvent("download"), button.click()]);
  return readFileSync(await download.path());
}

/** Every record of this origin's IndexedDB, as text (sealed bytes as Latin-1). */
async function indexedDbText(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const r = indexedDB.open("wardline");
        r.onerror = () => reject(r.error);
        r.onsuccess = () => {
          const db = r.result;
          if (!db.objectStoreNames.contains("devices")) return resolve("");
          const all = db.transaction("devices").objectStore("devices").getAll();
          all.onsuccess = () =>
            resolve(
              all.result
                .map((rec) =>
                  JSON.stringify({ ...rec, sealed: undefined }) +
                  Array.from(rec.sealed, (b) => String.fromCharCode(b)).join(""),
                )
                .join("\n"),
            );
          all.onerror = () => reject(all.error);
        };
      }),
  );
}

const browser = await launchChromium();
try {
  const viewport = { width: 1280, height: 900 };
  const nurseCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const physicianCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const nurse = await nurseCtx.newPage();
  const physician = await physicianCtx.newPage();
  watch(nurse, "nurse");
  watch(physician, "physician");

  // 1. First sign-in in each browser: choose a PIN; the browser becomes a device.
  for (const [page, who, name] of [
    [nurse, cfg.nurse, "nurse"],
    [physician, cfg.physician, "physician"],
  ]) {
    await signIn(page, who, who.codes[0]);
    await page.getByRole("heading", { level: 2, name: "Choose a PIN for this browser" }).waitFor();
    if (name === "nurse") await audit(page, "choose-pin");
    await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
    await page.getByLabel("PIN again").fill(cfg.pin);
    const t0 = Date.now();
    await page.getByRole("button", { name: "Set up this browser" }).click();
    await conversations(page).waitFor({ timeout: 30000 });
    log("device_created", { who: name, ms: Date.now() - t0 });
  }
  await audit(nurse, "no-conversations");

  // 2. The nurse opens a patient thread with the physician and sends an urgent message.
  await nurse.getByRole("button", { name: "New conversation" }).click();
  await nurse.getByRole("heading", { level: 2, name: "New conversation" }).waitFor();
  await audit(nurse, "new-conversation");
  await nurse.getByLabel(cfg.physician.name).check();
  await nurse.getByLabel(cfg.cli.name).check();
  await nurse.getByLabel(/Patient reference/).fill(cfg.patientRef);
  await nurse.getByRole("button", { name: "Start" }).click();
  await nurse.getByRole("textbox", { name: "Message" }).waitFor({ timeout: 15000 });
  // With a photo of the wound (its camera's EXIF and GPS must not travel) and a PDF.
  const photo = await photoWithExif(nurseCtx);
  if (!photo.includes(cfg.exifMarker)) fail("the test photo lacks its EXIF block");
  const pdf = Buffer.from(cfg.pdf, "latin1");
  await send(nurse, cfg.texts[0], "urgent", [
    { name: "wound.jpg", mimeType: "image/jpeg", buffer: photo },
    { name: "lab-result.pdf", mimeType: "application/pdf", buffer: pdf },
  ]);
  await audit(nurse, "sent-urgent");
  log("nurse_sent");
  // The member on the command line answers; the browser decrypts it.
  await messages(nurse).getByText(cfg.cli.reply).waitFor({ timeout: 30000 });
  log("cli_reply_received");

  // 3. It reaches the physician without a reload: listed unread, marked urgent.
  const item = physician.getByRole("button", { name: new RegExp(cfg.nurse.name) });
  // The urgent message and the terminal's answer.
  await item.getByText("2 unread").waitFor({ timeout: 20000 });
  const listed = await item.innerText();
  await audit(physician, "unread-urgent");
  // Stored on the physician's device but not shown there yet: the nurse
  // sees it delivered, not read.
  const urgent = messages(nurse).locator("li.mine", { hasText: cfg.texts[0] });
  const receipt = urgent.locator(".receipts > p");
  await receipt.filter({ hasText: new RegExp(`Delivered to .*${cfg.physician.name}`) }).waitFor({ timeout: 20000 });
  const beforeRead = await receipt.innerText();
  await item.click();
  await messages(physician).getByText(cfg.texts[0]).waitFor({ timeout: 15000 });
  const shown = await messages(physician).innerText();
  await audit(physician, "conversation");
  log("physician_received", { listed, shown });
  // The attachments: the photo shows, both can be saved, as sent — but the
  // photo without its metadata.
  const picture = messages(physician).getByRole("img", { name: "Photo: wound.jpg" });
  await picture.waitFor({ timeout: 15000 });
  const photoShown = await picture.evaluate((img) => img.complete && img.naturalWidth);
  const gotPdf = await saved(physician, messages(physician).getByRole("button", { name: /Save lab-result\.pdf/ }));
  const gotPhoto = await saved(physician, messages(physician).getByRole("button", { name: /Save wound\.jpg/ }));
  log("attachments", {
    photoShown,
    pdfSame: gotPdf.equals(pdf),
    photoIsJpeg: gotPhoto[0] === 0xff && gotPhoto[1] === 0xd8,
    photoKeepsMarker: gotPhoto.includes(cfg.exifMarker),
    photoKeepsGps: gotPhoto.includes("GPS 51.5072N"),
    photoHasExif: gotPhoto.includes("Exif"),
  });
  // Shown to the physician: the nurse sees it read, and by which device.
  await receipt.filter({ hasText: new RegExp(`Read by .*${cfg.physician.name}`) }).waitFor({ timeout: 20000 });
  const afterRead = await receipt.innerText();
  await urgent.getByText("Receipts by device").click();
  const byDevice = await urgent.locator(".receipts ul").innerText();
  await audit(nurse, "receipts");
  log("receipts", { beforeRead, afterRead, byDevice });

  // 4. The physician answers the urgent message (a reply); it reaches the
  // nurse live, quoting what it answers.
  await messages(physician)
    .locator("li.theirs", { hasText: cfg.texts[0] })
    .getByRole("button", { name: /^Reply to / })
    .click();
  const replying = await physician.locator(".replying").innerText();
  await send(physician, cfg.texts[1], "routine");
  const answer = messages(nurse).locator("li.theirs", { hasText: cfg.texts[1] });
  await answer.waitFor({ timeout: 20000 });
  const quoted = await answer.locator("blockquote").innerText();
  await audit(nurse, "reply");
  log("nurse_received", { replying, quoted });

  // A voice clip recorded in the nurse's browser (Chromium's fake
  // microphone) reaches the physician, who can play it.
  await nurse.getByRole("button", { name: "Record a voice clip" }).click();
  await nurse.getByRole("button", { name: "Stop recording" }).waitFor();
  await nurse.waitForTimeout(1200);
  await nurse.getByRole("button", { name: "Stop recording" }).click();
  const clip = nurse.getByRole("list", { name: "Voice clips to send" }).getByRole("listitem");
  await clip.waitFor();
  const clipName = (await clip.innerText()).split(" (")[0];
  await audit(nurse, "voice-clip");
  await nurse.getByRole("button", { name: "Send" }).click();
  await messages(nurse).locator("li.mine:not(.unsent)", { hasText: clipName }).waitFor({ timeout: 15000 });
  const player = messages(physician).locator("li.theirs", { hasText: clipName }).locator("audio");
  await player.waitFor({ timeout: 15000 });
  // Decodable: the browser read the clip's header (a recorded WebM often
  // states no duration, so that is not asked).
  const playable = await player.evaluate(
    (a) =>
      new Promise((resolve) => {
        if (a.readyState >= 1) return resolve(true);
        a.onloadedmetadata = () => resolve(true);
        a.onerror = () => resolve(false);
      }),
  );
  log("voice_clip", { clipName, playable });

  // 4b. The physician forwards the nurse's urgent message, photo and PDF
  // included, into a new group with her: the copy says who wrote it, and
  // its photo opens there (uploaded again under a key of its own).
  await physician.getByRole("button", { name: "New conversation" }).click();
  await physician.getByLabel(cfg.nurse.name).check();
  await physician.getByLabel(/^Title/).fill("Wound clinic");
  await physician.getByRole("button", { name: "Start" }).click();
  await physician.getByRole("heading", { level: 2, name: "Wound clinic" }).waitFor({ timeout: 15000 });
  await inList(physician, cfg.nurse.name).click();
  await messages(physician)
    .locator("li.theirs", { hasText: cfg.texts[0] })
    .getByRole("button", { name: /^Forward / })
    .click();
  await physician.getByLabel("Forward to").selectOption({ label: "Wound clinic" });
  // From a patient thread into one that is not that patient's: said before it goes.
  const forwardWarning = await physician.locator("form.forward .note").innerText();
  await audit(physician, "forward");
  await physician.getByRole("button", { name: "Forward", exact: true }).click();
  await physician.getByText("Forwarded to Wound clinic.").waitFor({ timeout: 20000 });
  await inList(nurse, "^Wound clinic").click();
  const copy = messages(nurse).locator("li.theirs", { hasText: cfg.texts[0] });
  await copy.waitFor({ timeout: 20000 });
  const copyPhoto = copy.getByRole("img", { name: "Photo: wound.jpg" });
  await copyPhoto.waitFor({ timeout: 15000 });
  const forwardedPhoto = await copyPhoto.evaluate((img) => img.complete && img.naturalWidth);
  const forwardedLine = await copy.locator(".forwarded").innerText();
  await audit(nurse, "forwarded");
  // The organisation turns forwarding off: the worker refuses, even from a
  // page that still offers it (it asks the server for the policy first).
  const patch = await fetch(`${cfg.url}api/v1/org/policy`, {
    method: "PATCH",
    headers: { Authorization: `Bearer ${cfg.adminToken}`, "Content-Type": "application/merge-patch+json" },
    body: JSON.stringify({ devices: { allow_forwarding: false } }),
  });
  if (!patch.ok) fail(`policy patch answered ${patch.status}: ${await patch.text()}`);
  await copy.getByRole("button", { name: /^Forward / }).click();
  await nurse.getByRole("button", { name: "Forward", exact: true }).click();
  const forwardRefused = await nurse.locator("form.forward").getByRole("alert").innerText();
  await nurse.locator("form.forward").getByRole("button", { name: "Cancel" }).click();
  log("forwarded", { forwardedLine, forwardedPhoto, forwardRefused, forwardWarning });

  // 4c. Attachments the organisation does not take: a file over its size
  // limit (the server's 413, before it stores a byte) and a type it does
  // not allow (refused in the worker, before upload). Said plainly; nothing
  // is sent, and what was typed stays.
  const limits = await fetch(`${cfg.url}api/v1/org/policy`, {
    method: "PATCH",
    headers: { Authorization: `Bearer ${cfg.adminToken}`, "Content-Type": "application/merge-patch+json" },
    body: JSON.stringify({
      messaging: { max_attachment_bytes: 65536 },
      devices: { allowed_attachment_types: ["image/*", "application/pdf", "audio/*"] },
    }),
  });
  if (!limits.ok) fail(`policy patch answered ${limits.status}: ${await limits.text()}`);
  const composerAlert = nurse.locator("form.composer").getByRole("alert");
  const unsentText = "Consent form scan attached";
  await nurse.getByRole("textbox", { name: "Message" }).fill(unsentText);
  await nurse.getByLabel("Attach files").setInputFiles([
    { name: "consent-scan.pdf", mimeType: "application/pdf", buffer: Buffer.alloc(200 * 1024, 0x25) },
  ]);
  await nurse.getByRole("button", { name: "Send" }).click();
  await composerAlert.filter({ hasText: "too large" }).waitFor({ timeout: 15000 });
  const tooLarge = await composerAlert.innerText();
  await nurse.getByLabel("Attach files").setInputFiles([
    { name: "handover.txt", mimeType: "text/plain", buffer: Buffer.from("handover notes") },
  ]);
  await nurse.getByRole("button", { name: "Send" }).click();
  await composerAlert.filter({ hasText: "does not allow" }).waitFor({ timeout: 15000 });
  const typeRefused = await composerAlert.innerText();
  await audit(nurse, "attachment-refused");
  const keptTyped = await nurse.getByRole("textbox", { name: "Message" }).inputValue();
  const sentAnyway = await messages(nurse).getByText(unsentText).count();
  await nurse.getByLabel("Attach files").setInputFiles([]);
  await nurse.getByRole("textbox", { name: "Message" }).fill("");
  log("attachments_refused", { tooLarge, typeRefused, keptTyped, sentAnyway });

  // 5. A reload: the session is kept, sealed in the browser's store, so the
  // PIN alone opens it again — a wrong one opens nothing.
  await physician.reload();
  await physician.getByRole("heading", { level: 1, name: "Unlock" }).waitFor({ timeout: 15000 });
  await physician.getByLabel("PIN", { exact: true }).fill(cfg.wrongPin);
  await physician.getByRole("button", { name: "Unlock", exact: true }).click();
  const wrongPin = await physician.getByRole("alert").innerText();
  await audit(physician, "wrong-pin");
  await physician.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  const t0 = Date.now();
  await physician.getByRole("button", { name: "Unlock", exact: true }).click();
  await conversations(physician).waitFor({ timeout: 30000 });
  const unlockMs = Date.now() - t0;
  await physician.getByRole("button", { name: new RegExp(cfg.nurse.name) }).click();
  await messages(physician).getByText(cfg.texts[1]).waitFor({ timeout: 15000 });
  const history = await messages(physician).innerText();
  // Forwarding is off now: nothing offers it.
  const forwardOffered = await messages(physician).getByRole("button", { name: /^Forward / }).count();
  log("reloaded", { wrongPin, unlockMs, history, forwardOffered });

  // 5b. The network goes: the history stays readable, what the physician
  // writes waits in the outbox (sealed), and goes in order once it is back.
  await physicianCtx.setOffline(true);
  for (const text of [cfg.texts[2], cfg.texts[3]]) {
    await physician.getByRole("textbox", { name: "Message" }).fill(text);
    await physician.getByRole("button", { name: "Send" }).click();
    await messages(physician).locator("li.unsent", { hasText: text }).waitFor({ timeout: 15000 });
  }
  const offlineNote = await physician.locator("p.offline").innerText({ timeout: 15000 });
  await audit(physician, "offline");
  await physicianCtx.setOffline(false);
  await physician.waitForFunction(() => !document.querySelector("li.unsent"), null, { timeout: 45000 });
  await physician.locator("p.offline").waitFor({ state: "detached", timeout: 15000 });
  await inList(nurse, cfg.physician.name).click();
  await messages(nurse).getByText(cfg.texts[3]).waitFor({ timeout: 20000 });
  const nurseLog = await messages(nurse).innerText();
  log("offline", { offlineNote, inOrder: nurseLog.indexOf(cfg.texts[2]) < nurseLog.indexOf(cfg.texts[3]) });

  // 6. A second tab of the nurse's: one writer. It says the first has the
  // device, takes it over on request, and the first tab stops.
  const tab2 = await nurseCtx.newPage();
  watch(tab2, "nurse tab 2");
  // The session is this browser's: the PIN resumes it in the new tab too.
  await tab2.goto(cfg.url);
  await tab2.getByRole("heading", { level: 1, name: "Unlock" }).waitFor({ timeout: 15000 });
  await tab2.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await tab2.getByRole("button", { name: "Unlock", exact: true }).click();
  await tab2.getByRole("heading", { level: 2, name: "Open in another tab" }).waitFor({ timeout: 15000 });
  await audit(tab2, "open-elsewhere");
  await tab2.getByRole("button", { name: "Use Wardline in this tab" }).click();
  await nurse.getByRole("heading", { level: 2, name: "Open in another tab" }).waitFor({ timeout: 15000 });
  await tab2.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await tab2.getByRole("button", { name: "Unlock" }).click();
  await conversations(tab2).waitFor({ timeout: 30000 });
  await tab2.getByRole("button", { name: new RegExp(cfg.physician.name) }).click();
  await messages(tab2).getByText(cfg.texts[1]).waitFor({ timeout: 15000 });
  // The group did not fork: later messages decrypt both ways.
  await send(tab2, cfg.texts[4], "stat");
  await messages(physician).getByText(cfg.texts[4]).waitFor({ timeout: 20000 });
  await send(physician, cfg.texts[5], "routine");
  await messages(tab2).getByText(cfg.texts[5]).waitFor({ timeout: 20000 });
  await audit(tab2, "taken-over");
  log("second_tab", { first_tab: await nurse.locator("main").innerText() });

  // 7. Members: the nurse adds a colleague and takes them out again; the
  // physician leaves. What is sent afterwards does not reach the physician.
  const members = tab2.locator("details.members");
  await members.getByText("Members (3)").click();
  await audit(tab2, "members");
  await members.getByLabel("Add a colleague").selectOption({ label: cfg.extra.name });
  await members.getByRole("button", { name: "Add", exact: true }).click();
  await members.getByText("Members (4)").waitFor({ timeout: 20000 });
  await members.getByRole("button", { name: `Remove ${cfg.extra.name}` }).click();
  await members.getByText("Members (3)").waitFor({ timeout: 20000 });
  const physicianMembers = physician.locator("details.members");
  await physicianMembers.getByText("Members (3)").click();
  await physicianMembers.getByRole("button", { name: "Leave conversation" }).click();
  await physicianMembers.getByRole("button", { name: "Leave", exact: true }).click();
  await physician.getByText("You are no longer in this conversation.").waitFor({ timeout: 20000 });
  const composerLeft = await physician.getByRole("textbox", { name: "Message" }).count();
  await audit(physician, "left");
  await members.getByText("Members (2)").waitFor({ timeout: 20000 });
  await send(tab2, cfg.texts[6], "routine");
  await messages(tab2).locator("li.mine:not(.unsent)", { hasText: cfg.texts[6] }).waitFor({ timeout: 20000 });
  // Long enough for a socket delivery (p99 ≈ 0.4 s on this machine).
  await physician.waitForTimeout(2000);
  const physicianAfter = await messages(physician).innerText();
  log("members", { composerLeft, physicianAfter });

  // 8. What each browser keeps.
  log("indexeddb", { nurse: await indexedDbText(tab2), physician: await indexedDbText(physician) });

  // 9. Left alone for the organisation's lock_after_idle_secs, the app locks:
  // the worker lets go of the keys, and the PIN opens it again. (Page time
  // is fast-forwarded; the last key press restarts the idle timer on it.)
  // The decrypted photo on screen goes with the keys.
  const photoUrl = await messages(tab2).getByRole("img", { name: "Photo: wound.jpg" }).getAttribute("src");
  await tab2.clock.install();
  await tab2.keyboard.press("Shift");
  await tab2.clock.fastForward((cfg.idleSecs + 1) * 1000);
  await tab2.getByRole("heading", { level: 2, name: "Unlock" }).waitFor({ timeout: 15000 });
  await audit(tab2, "idle-locked");
  // (Loading a released URL is logged as a failed load: that one is expected.)
  const logged = problems.length;
  const photoAfterLock = await tab2.evaluate(
    (url) =>
      new Promise((resolve) => {
        const img = new Image();
        img.onload = () => resolve("loads");
        img.onerror = () => resolve("gone");
        img.src = url;
      }),
    photoUrl,
  );
  await tab2.waitForTimeout(200);
  const probe = problems.splice(logged).filter((p) => !/nurse tab 2 console: .*ERR_FILE_NOT_FOUND/.test(p));
  problems.push(...probe);
  await tab2.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await tab2.getByRole("button", { name: "Unlock" }).click();
  await conversations(tab2).waitFor({ timeout: 30000 });
  log("idle_locked", { photoUrl, photoAfterLock });

  // 10. The physician's laptop is reported lost: an administrator wipes this
  // browser (the call \`wardline admin devices wipe\` makes). The open app
  // erases its store and returns to sign-in, saying why.
  const deviceId = await physician.evaluate(() => localStorage.getItem("wardline.device"));
  const wipe = await fetch(`${cfg.url}api/v1/devices/${deviceId}/wipe`, {
    method: "POST",
    headers: { Authorization: `Bearer ${cfg.adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: "laptop left in the cafeteria" }),
  });
  if (!wipe.ok) fail(`wipe answered ${wipe.status}: ${await wipe.text()}`);
  await physician.getByRole("heading", { level: 1, name: "Sign in" }).waitFor({ timeout: 30000 });
  const notice = await physician.getByRole("status").innerText();
  await audit(physician, "wiped");
  log("wiped", { notice, left: await indexedDbText(physician) });

  // 11. The nurse sets up Wardline in another browser (a workstation on
  // another ward): her open tab is told, so that a device she did not add
  // would not go unnoticed. The new browser is not told of the old one.
  const otherCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const other = await otherCtx.newPage();
  watch(other, "nurse's other browser");
  await signIn(other, cfg.nurse, cfg.nurse.codes[1]);
  await other.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await other.getByLabel("PIN again").fill(cfg.pin);
  await other.getByRole("button", { name: "Set up this browser" }).click();
  await conversations(other).waitFor({ timeout: 30000 });
  const told = tab2.locator(".new-device");
  await told.waitFor({ timeout: 30000 });
  const newDevice = await told.innerText();
  await audit(tab2, "new-device");
  log("new_device", { newDevice, toldTheNewOne: await other.locator(".new-device").count() });

  if (problems.length) fail(problems.join("\n"));
} catch (e) {
  // What the pages said before the failure is usually why.
  const shown = [];
  for (const p of pages) shown.push(await p.locator("body").innerText().catch(() => ""));
  fail(`${e.stack ?? e}\npages: ${JSON.stringify(shown)}\n${problems.join("\n")}`);
} finally {
  await browser.close();
}
