// Patient texting for staff, inside the worker: the practice's patient
// threads with their unread counts, the notices that a patient replied,
// one thread with the messages this browser sealed opened, and secure
// messages — sealed here (only the writer and the patient can read them;
// the server never holds the text) or readable by the practice team, as the
// organisation's `patients.secure_messages` says.
import type { components } from "../api/schema";
import { api, call, Failed } from "./api";
import * as device from "./device";
import type { PatientThreadView, PatientsView } from "./protocol";

type S = components["schemas"];

/** The practice's patients with their threads and what is new. */
export async function patients(): Promise<PatientsView> {
  device.open();
  const [threads, all, notices] = await Promise.all([
    call(() => api.GET("/api/v1/patient-threads")),
    call(() => api.GET("/api/v1/patients")),
    call(() => api.GET("/api/v1/notices")),
  ]);
  return {
    threads: threads.threads,
    patients: all.patients.map((p) => ({ id: p.id, name: p.name, mrn: p.mrn ?? null })),
    replied: [...new Set(notices.notices.filter((n) => n.kind === "patient_reply").map((n) => n.patient_id))],
  };
}

/** One patient's thread (opening it marks the patient's messages read and clears their notices). */
export async function thread(patient: string): Promise<PatientThreadView> {
  const d = device.open();
  const [p, t] = await Promise.all([
    call(() => api.GET("/api/v1/patients/{id}", { params: { path: { id: patient } } })),
    call(() => api.GET("/api/v1/patients/{id}/messages", { params: { path: { id: patient } } })),
  ]);
  const opened = JSON.parse(d.open_patient_thread(JSON.stringify(t))) as S["PatientThread"];
  return { patient: p, messages: opened.messages };
}

/**
 * Sends a secure message: the patient gets a text with a link and reads it
 * after an identity check. `teamReadable` where the policy lets the writer
 * choose; otherwise the policy decides.
 */
export async function sendSecure(patient: string, text: string, teamReadable: boolean): Promise<string> {
  const d = device.open();
  if (!text.trim()) throw new Failed({ status: 422, code: "validation", message: "Write the message first." });
  const p = await call(() => api.GET("/api/v1/patients/{id}", { params: { path: { id: patient } } }));
  const team = p.secure_messages === "team" || (p.secure_messages === "writer_chooses" && teamReadable);
  if (team) {
    const r = await call(() =>
      api.POST("/api/v1/patients/{id}/messages", { params: { path: { id: patient } }, body: { text } }),
    );
    return r.message_id ?? "";
  }
  const sealed = JSON.parse(d.seal_for_patient(text)) as S["ClientSealed"];
  const r = await call(() =>
    api.POST("/api/v1/patients/{id}/messages", { params: { path: { id: patient } }, body: { sealed } }),
  );
  if (!r.message_id) throw new Failed({ status: 502, code: "unavailable", message: "The server did not name the message." });
  // The writer's copy of the key, stored with the device (sealed under the PIN).
  await device.keep((dev) => dev.keep_patient_key(r.message_id!, sealed.key_fragment));
  return r.message_id;
}

/** The organisation's approved texts (built-in or its own), for the template form. */
export async function templates(): Promise<S["Template"][]> {
  device.open();
  return (await call(() => api.GET("/api/v1/sms/templates"))).templates;
}

/**
 * Sends a template to a patient: a `no_phi` one as a plain text, a `phi`
 * one as a secure message behind a link. The server checks consent, quiet
 * hours and the values (dates, times, phone numbers) and fills its own
 * placeholders.
 */
export async function sendTemplate(patient: string, template: string, params: Record<string, string>): Promise<string> {
  device.open();
  const r = await call(() =>
    api.POST("/api/v1/patients/{id}/texts", { params: { path: { id: patient } }, body: { template, params } }),
  );
  return r.sms.status;
}
