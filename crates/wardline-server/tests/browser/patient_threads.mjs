// Patient texting from the clinicians' web app, in Debian's Chromium: a
// nurse opens a patient's thread, sends a secure message sealed in her
// browser (only she and the patient can read it: the server never holds the
// text) and one readable by the practice team; the patient answers by text
// message (the Rust test posts it as the SMS provider would), and the nurse
// is told at once, across the top of her screen, and reads the answer in
// the thread. Every screen is audited by axe-core and photographed. Prints
// one JSON line per step; waits for the test's signal. Called by
// tests/it/patients.rs.
//
// {url, org, password, pin, screenshots, signals, patient, sealedText, teamText, reply, nurse: {email, codes}}
import { launchChromium, scriptRun, waitForSignal } from "./lib.mjs";

const { cfg, log, fail, problems, audit, watch } = scriptRun("patient_threads.mjs", "patients");

const browser = await launchChromium();
let page;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  watch(page, "nurse");

  await page.goto(cfg.url);
  await page.getByLabel("Organisation").fill(cfg.org);
  await page.getByLabel("E-mail").fill(cfg.nurse.email);
  await page.getByLabel("Password").fill(cfg.password);
  await page.keyboard.press("Enter");
  await page.getByLabel(/authenticator app/).fill(cfg.nurse.codes[0]);
  await page.keyboard.press("Enter");
  await page.getByLabel("PIN", { exact: true }).fill(cfg.pin);
  await page.getByLabel("PIN again").fill(cfg.pin);
  await page.getByRole("button", { name: "Set up this browser" }).click();
  const nav = page.getByRole("navigation", { name: "Conversations" });
  await nav.waitFor({ timeout: 30000 });

  // 1. The patient, found by name; the thread is empty.
  await nav.getByRole("button", { name: "Texting patients" }).click();
  await page.getByRole("heading", { level: 2, name: "Patients" }).waitFor();
  await page.getByLabel(/Write to another patient/).fill(cfg.patient.slice(0, 5));
  await page.getByRole("list", { name: "Patients found" }).getByRole("button", { name: new RegExp(cfg.patient) }).click();
  await page.getByRole("heading", { level: 2, name: cfg.patient }).waitFor({ timeout: 15000 });
  await audit(page, "thread-empty");

  // 2. Sealed in this browser (the default the policy leaves to the writer), then one for the team.
  const thread = page.getByRole("list", { name: "Messages with the patient" });
  await page.getByLabel("Secure message").fill(cfg.sealedText);
  await page.getByRole("button", { name: "Send secure message" }).click();
  await thread.getByText(cfg.sealedText).waitFor({ timeout: 15000 });
  await page.getByLabel("Secure message").fill(cfg.teamText);
  await page.getByLabel(/Readable by the practice team/).check();
  await page.getByRole("button", { name: "Send secure message" }).click();
  await thread.getByText(cfg.teamText).waitFor({ timeout: 15000 });
  const status = await page.getByRole("status").last().innerText();
  await audit(page, "sent");
  log("sent", { thread: await thread.innerText(), status });


  // 3. The patient answers by text: the nurse is told across the top, and reads it.
  await page.getByRole("button", { name: "All patients" }).click();
  await waitForSignal(cfg.signals, "replied");
  const told = page.getByRole("region", { name: "Patient replies" });
  await told.waitFor({ timeout: 30000 });
  const toldText = await told.innerText();
  // The list, asked again on the same news, counts the reply unread.
  const threads = page.getByRole("list", { name: "Patient threads" });
  await threads.getByText(/1 unread/).waitFor({ timeout: 30000 });
  const listed = await threads.innerText();
  await audit(page, "replied");
  await told.getByRole("button", { name: /^Open / }).click();
  await thread.getByText(cfg.reply).waitFor({ timeout: 15000 });
  // Opened: the notice goes.
  await told.waitFor({ state: "detached", timeout: 30000 });
  await audit(page, "reply-read");
  log("reply", { told: toldText, listed, thread: await thread.innerText() });

  // A reminder from the organisation's approved templates (consent for reminders recorded).
  await page.getByLabel("Template", { exact: true }).selectOption("appointment_reminder");
  await page.getByLabel("date", { exact: true }).fill("2026-12-14");
  await page.getByLabel("time", { exact: true }).fill("09:30");
  await audit(page, "template");
  await page.getByRole("button", { name: "Send text" }).click();
  const templated = page.locator("form.template p[role=status]");
  await templated.waitFor({ timeout: 15000 });
  log("template", { status: await templated.innerText() });

  if (problems.length) fail(problems.join("\n"));
} catch (e) {
  fail(`${e.stack ?? e}\npage: ${page ? await page.locator("body").innerText().catch(() => "") : ""}\n${problems.join("\n")}`);
} finally {
  await browser.close();
}
