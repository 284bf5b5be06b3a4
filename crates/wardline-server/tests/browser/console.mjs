// The administration and compliance console in Debian's Chromium, as its
// people use it (issue 23), by labels and roles. Called by
// tests/it/web_console.rs with one JSON argument; one JSON line per step.
//
// The administrator adds a user (a bad e-mail first: the server's message
// shows on the field), suspends them, wipes a physician's lost phone and
// sees the phone's confirmation, sets the policy (a bad value first, shown
// on its field), previews and applies a retention change. The compliance
// officer searches the audit trail (and its refusals), opens an event's
// record, exports CSV, opens a patient's access report and its print
// layout, reads the integrity page, places and releases a legal hold. A
// nurse is offered none of it, even by address. Every screen is checked by
// axe-core and photographed.
//
// {url, org, password, admin, officer, nurse: {email, codes}, physician:
//  {name, device}, patientRef, screenshots}
import { readFileSync } from "node:fs";
import { launchChromium, scriptRun, signIn as signInAs } from "./lib.mjs";

const { cfg, log, fail, problems, pages, audit, watch } = scriptRun("console.mjs", "console");

const signIn = (page, who) => signInAs(page, cfg, who, who.codes[0]);

const nav = (page) => page.getByRole("navigation", { name: "Wardline" });
async function open(page, label, heading = label) {
  await nav(page).getByRole("link", { name: label, exact: true }).click();
  await page.getByRole("heading", { level: 2, name: heading, exact: true }).waitFor({ timeout: 15000 });
}
const navLinks = async (page) =>
  (await nav(page).count()) === 0 ? [] : (await nav(page).getByRole("link").allInnerTexts()).map((t) => t.trim());

const browser = await launchChromium();
try {
  const viewport = { width: 1280, height: 900 };

  // ---- The administrator ----------------------------------------------
  const adminCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const admin = await adminCtx.newPage();
  watch(admin, "admin");
  await signIn(admin, cfg.admin);
  const adminNav = await navLinks(admin);
  await open(admin, "Users");
  await admin.getByText(/\d+ people/).waitFor({ timeout: 15000 });
  await audit(admin, "users");

  // Filters: a name, then a role.
  await admin.getByLabel("Name or e-mail").fill(cfg.physician.name);
  await admin.getByRole("status").filter({ hasText: /of \d+ people/ }).waitFor();
  const found = await admin.getByRole("table", { name: "Users" }).getByRole("button").allInnerTexts();
  await admin.getByLabel("Name or e-mail").fill("");
  await admin.getByLabel("Role", { exact: true }).selectOption("nurse");
  const nurses = await admin.getByRole("table", { name: "Users" }).getByRole("button").allInnerTexts();
  await admin.getByLabel("Role", { exact: true }).selectOption("any");
  log("users_filtered", { adminNav, found, nurses });

  // Adding a user: a bad e-mail first, said on its field by the server.
  await admin.getByRole("button", { name: "Add a user" }).click();
  const form = admin.getByRole("form", { name: "Add a user" });
  await form.getByLabel("Name").fill(cfg.newUser.name);
  await form.getByLabel("E-mail").fill("not-an-address");
  await form.getByLabel("Nurse").check();
  await form.getByLabel("Temporary password").fill(cfg.newUser.password);
  await form.getByRole("button", { name: "Add user" }).click();
  const emailError = await form.locator(".field.invalid .field-error").innerText({ timeout: 15000 });
  const emailInvalid = await form.getByLabel("E-mail").getAttribute("aria-invalid");
  await audit(admin, "add-user-error");
  await form.getByLabel("E-mail").fill(cfg.newUser.email);
  await form.getByRole("button", { name: "Add user" }).click();
  await admin.getByRole("heading", { level: 2, name: cfg.newUser.name }).waitFor({ timeout: 15000 });
  await audit(admin, "user-page");
  // Suspending says what it does before it does it.
  await admin.getByRole("button", { name: "Suspend…" }).click();
  const suspendSays = await admin.getByRole("group", { name: "Suspend…" }).innerText();
  await admin.getByRole("button", { name: "Suspend", exact: true }).click();
  await admin.getByRole("status").filter({ hasText: "is suspended" }).waitFor({ timeout: 15000 });
  const deprovisionOffered = await admin.getByRole("button", { name: "Deprovision…" }).count();
  await admin.getByRole("button", { name: "Deprovision…" }).click();
  const deprovisionSays = await admin.getByRole("group", { name: "Deprovision…" }).innerText();
  await admin.getByRole("group", { name: "Deprovision…" }).getByRole("button", { name: "Cancel" }).click();
  log("user_added", { emailError, emailInvalid, suspendSays, deprovisionOffered, deprovisionSays });

  // The physician's lost phone: posture, then the wipe and its confirmation.
  await admin.getByRole("button", { name: "← All users" }).click();
  await admin.getByLabel("Name or e-mail").fill(cfg.physician.name);
  await admin.getByRole("table", { name: "Users" }).getByRole("button", { name: cfg.physician.name }).click();
  await admin.getByRole("heading", { level: 2, name: cfg.physician.name }).waitFor({ timeout: 15000 });
  const device = admin.getByRole("list").filter({ has: admin.getByRole("heading", { level: 4, name: cfg.physician.device }) });
  await device.getByRole("heading", { level: 4 }).waitFor({ timeout: 15000 });
  const deviceFacts = await device.innerText();
  await admin.getByRole("heading", { level: 3, name: "Sessions" }).waitFor();
  await audit(admin, "user-devices");
  await admin.getByRole("button", { name: `Wipe ${cfg.physician.device}…` }).click();
  const wipeForm = admin.getByRole("form", { name: `Wipe ${cfg.physician.device}` });
  await wipeForm.getByRole("button", { name: "Wipe the device" }).click();
  const reasonError = await wipeForm.locator(".field.invalid .field-error").innerText({ timeout: 15000 });
  await wipeForm.getByLabel(/Reason/).fill(cfg.wipeReason);
  await wipeForm.getByRole("button", { name: "Wipe the device" }).click();
  const ordered = await admin.getByText(/Wipe ordered at/).innerText({ timeout: 15000 });
  await audit(admin, "wipe-ordered");
  // The phone erases itself when it next calls (the test's command-line
  // device), and this page follows the wipe until it is confirmed.
  const confirmed = await admin.getByText(/the device confirmed it erased/).innerText({ timeout: 60000 });
  await audit(admin, "wipe-confirmed");
  log("device_wiped", { deviceFacts, reasonError, ordered, confirmed });

  // Policies: a value out of range is refused on its field, then fixed.
  await open(admin, "Policies");
  const idle = admin.getByLabel("Sign out after inactivity (seconds)");
  await idle.waitFor({ timeout: 15000 });
  await idle.fill("10");
  await admin.getByRole("button", { name: "Save the policy" }).click();
  const idleError = await admin.locator(".field.invalid .field-error").innerText({ timeout: 15000 });
  const idleInvalid = await idle.getAttribute("aria-invalid");
  await audit(admin, "policy-error");
  await idle.fill("1800");
  await admin.getByLabel("Shortest PIN (characters)").fill("8");
  await admin.getByRole("button", { name: "Save the policy" }).click();
  await admin.getByRole("status").filter({ hasText: "The policy is saved" }).waitFor({ timeout: 15000 });
  // Retention: previewed, then applied as previewed.
  await admin.getByLabel("Keep them forever", { exact: false }).uncheck();
  await admin.getByLabel("Keep messages and attachments for (days)").fill(String(cfg.retentionDays));
  await admin.getByRole("button", { name: "Preview what this deletes" }).click();
  const preview = admin.getByRole("table", { name: "What a deletion run would do now" });
  await preview.waitFor({ timeout: 15000 });
  const previewText = await preview.innerText();
  await audit(admin, "retention-preview");
  await admin.getByRole("button", { name: "Apply this policy…" }).click();
  const applySays = await admin.getByRole("group", { name: "Apply this policy…" }).innerText();
  await admin.getByRole("button", { name: "Apply", exact: true }).click();
  await admin.getByRole("status").filter({ hasText: "lifecycle policy is applied" }).waitFor({ timeout: 15000 });
  log("policies", { idleError, idleInvalid, previewText, applySays });

  // Analytics: charts drawn, and their figures as tables.
  await open(admin, "Analytics");
  await admin.getByRole("heading", { level: 3, name: "Messages per day by staff role" }).waitFor({ timeout: 15000 });
  await admin.locator("canvas").first().waitFor({ timeout: 15000 });
  const charts = await admin.locator("canvas").evaluateAll((cs) =>
    cs.map((c) => {
      // Painted: some pixels are not transparent.
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
      return { label: c.getAttribute("aria-label"), painted };
    }),
  );
  await admin.getByText("The figures as a table").first().click();
  const figures = await admin.getByRole("table", { name: "Messages per day by staff role" }).innerText();
  await audit(admin, "analytics");
  log("analytics", { charts, figures });

  // ---- The compliance officer -----------------------------------------
  const officerCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport, acceptDownloads: true });
  const officer = await officerCtx.newPage();
  watch(officer, "officer");
  await signIn(officer, cfg.officer);
  const officerNav = await navLinks(officer);
  await open(officer, "Audit trail");
  await officer.getByRole("table", { name: "Audit events" }).waitFor({ timeout: 15000 });
  await audit(officer, "audit");
  // Waits until every row of the table has `outcome` and `action` (if given).
  const rowsAre = (action, outcome) =>
    officer.waitForFunction(
      ([action, outcome]) => {
        const rows = [...document.querySelectorAll("table.audit tbody tr")];
        if (rows.length === 0) return document.body.innerText.includes("Nothing matches.");
        return rows.every(
          (r) => (!action || r.cells[3].innerText === action) && (!outcome || r.cells[4].innerText === outcome),
        );
      },
      [action, outcome],
      { timeout: 15000 },
    );
  await officer.getByLabel("Action").selectOption("user.create");
  await officer.getByRole("button", { name: "Search", exact: true }).click();
  await rowsAre("user.create", null);
  const created = await officer.getByRole("table", { name: "Audit events" }).innerText();
  await officer.getByRole("table", { name: "Audit events" }).getByRole("button").first().click();
  const record = await officer.getByRole("region", { name: /^Event \d+$/ }).innerText();
  await audit(officer, "audit-record");
  // Refusals: the nurse's calls to console endpoints, denied by the server.
  await officer.getByLabel("Action").selectOption("");
  await officer.getByLabel("Outcome").selectOption("denied");
  await officer.getByRole("button", { name: "Search", exact: true }).click();
  await rowsAre(null, "denied");
  const denied = await officer.getByRole("table", { name: "Audit events" }).innerText();
  const [download] = await Promise.all([
    officer.waitForEvent("download"),
    officer.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  log("audit", { officerNav, created, record, denied, csvName: download.suggestedFilename(), csv });

  await open(officer, "Patient access report");
  await officer.getByLabel("Patient (reference or MRN)").fill(cfg.patientRef);
  await officer.getByRole("button", { name: "Show who accessed it" }).click();
  const report = officer.getByRole("article");
  await report.getByRole("table", { name: "Per person" }).waitFor({ timeout: 15000 });
  const reportText = await report.innerText();
  await audit(officer, "access-report");
  await officer.emulateMedia({ media: "print" });
  const printed = await officer.evaluate(() => ({
    nav: getComputedStyle(document.querySelector("nav.console-nav")).display,
    button: getComputedStyle(document.querySelector("article.report button")).display,
    report: getComputedStyle(document.querySelector("article.report")).display,
  }));
  await officer.screenshot({ path: `${cfg.screenshots}/console-access-report-print.png`, fullPage: true });
  await officer.emulateMedia({ media: "screen" });
  log("access_report", { reportText, printed });

  await open(officer, "Audit integrity");
  await officer.getByText("Valid for the key the server publishes.").waitFor({ timeout: 15000 });
  const integrity = await officer.getByRole("region", { name: "Latest signed checkpoint" }).innerText();
  await audit(officer, "integrity");
  log("integrity", { integrity });

  await open(officer, "Break-glass", "Break-glass access");
  // Names and what the officer was told arrive after the grants.
  await officer.getByRole("table").getByText(cfg.bystander).waitFor({ timeout: 15000 });
  await officer.waitForFunction(() => document.querySelector("table tbody tr td:nth-of-type(4) time") !== null, null, {
    timeout: 15000,
  });
  const grants = await officer.getByRole("table").innerText();
  await audit(officer, "break-glass");
  log("break_glass", { grants });

  await open(officer, "Legal holds");
  await officer.getByLabel("Everything about a patient").check();
  await officer.getByLabel(/Patient reference/).fill(cfg.patientRef);
  await officer.getByLabel("Matter").fill(cfg.matter);
  await officer.getByLabel("Reason", { exact: true }).fill("Litigation notice received from counsel");
  await officer.getByRole("button", { name: "Place the hold" }).click();
  await officer.getByRole("status").filter({ hasText: "Hold placed" }).waitFor({ timeout: 15000 });
  const active = await officer.getByRole("region", { name: /Active holds/ }).innerText();
  await audit(officer, "holds");
  await officer.getByRole("button", { name: `Release “${cfg.matter}”…` }).click();
  await officer.getByLabel("Why it is released").fill("Matter settled; counsel released the hold");
  await officer.getByRole("button", { name: "Release the hold" }).click();
  await officer.getByRole("region", { name: /Released holds/ }).waitFor({ timeout: 15000 });
  const released = await officer.getByRole("region", { name: /Released holds/ }).innerText();
  await audit(officer, "holds-released");
  log("holds", { active, released });

  // ---- A nurse -------------------------------------------------------------
  const nurseCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const nurse = await nurseCtx.newPage();
  watch(nurse, "nurse");
  await signIn(nurse, cfg.nurse);
  const nurseNav = await navLinks(nurse);
  // Not by address either: the screen is not offered.
  await nurse.goto(`${cfg.url}#console/audit`);
  await nurse.getByRole("heading", { level: 1, name: "Wardline" }).waitFor({ timeout: 15000 });
  await nurse.waitForTimeout(500);
  const nurseHeadings = await nurse.getByRole("heading", { level: 2 }).allInnerTexts();
  await audit(nurse, "nurse");
  log("nurse", { nurseNav, nurseHeadings });

  if (problems.length) fail(problems.join("\n"));
} catch (e) {
  const shown = [];
  for (const p of pages) shown.push(await p.locator("body").innerText().catch(() => ""));
  fail(`${e.stack ?? e}\npages: ${JSON.stringify(shown)}\n${problems.join("\n")}`);
} finally {
  await browser.close();
}
