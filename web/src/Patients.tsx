// Patient texting for staff: the practice's patient threads with unread
// counts, a notice when a patient replies, a thread, and secure messages —
// sealed in this browser (only the writer and the patient read them) or
// readable by the team, as the organisation's policy says. The patient gets
// a text with a link, never the message itself.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Problem, useAction, useKeptFresh } from "./ui";
import { ask, onNews, type News } from "./session";
import { When } from "./format";
import type { components } from "./api/schema";
import type { PatientThreadView, PatientsView } from "./worker/protocol";

type Template = components["schemas"]["Template"];

/** The news patient views ask again on: a patient replied. */
const patientReplied = (n: News) => n.event === "patient_notice";

/** How often the list of threads is asked again while open (ms), besides on news. */
const PATIENTS_POLL_MS = 30_000;

/** Across the top: which patients replied since this person last opened their thread. */
export function PatientReplies({ onOpen }: { onOpen: (patient: string) => void }) {
  const [view, setView] = useState<PatientsView | null>(null);
  const load = useCallback(async () => {
    const r = await ask({ op: "patients" });
    // Not everyone texts patients (the patient_texting permission): then nothing shows.
    if (r.ok) setView(r.value);
  }, []);
  useKeptFresh(load, null, patientReplied);
  if (!view || view.replied.length === 0) return null;
  const name = (id: string) => view.patients.find((p) => p.id === id)?.name ?? "A patient";
  return (
    <section className="patient-replies" aria-label="Patient replies">
      {view.replied.map((id) => (
        <p key={id}>
          <strong>{name(id)}</strong> replied.{" "}
          <button
            type="button"
            className="secondary small"
            onClick={() => {
              // Opening the thread clears the notice on the server too.
              setView((v) => v && { ...v, replied: v.replied.filter((x) => x !== id) });
              onOpen(id);
            }}
          >
            Open {name(id)}'s thread
          </button>
        </p>
      ))}
    </section>
  );
}

/** The practice's patients: threads first (unread counts), then anyone, found by name or MRN. */
export function PatientsPanel({
  open,
  onOpen,
  onClose,
}: {
  open: string | null;
  onOpen: (patient: string | null) => void;
  onClose: () => void;
}) {
  const [view, setView] = useState<PatientsView | null>(null);
  const [filter, setFilter] = useState("");
  const { failure, run } = useAction();
  const load = useCallback(async () => {
    const r = await run(() => ask({ op: "patients" }));
    if (r) setView(r);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useKeptFresh(load, PATIENTS_POLL_MS, patientReplied);
  if (open) return <PatientThread patient={open} onBack={() => { onOpen(null); load(); }} />;
  const f = filter.trim().toLowerCase();
  const others = (view?.patients ?? []).filter(
    (p) => f && !view?.threads.some((t) => t.patient_id === p.id) && (p.name.toLowerCase().includes(f) || (p.mrn ?? "").toLowerCase().includes(f)),
  );
  return (
    <section className="conversation-view" aria-labelledby="patients-heading">
      <h2 id="patients-heading">Patients</h2>
      <Problem failure={failure} />
      {view && view.threads.length === 0 && <p>No patient threads yet.</p>}
      <ul className="directory" aria-label="Patient threads">
        {view?.threads.map((t) => (
          <li key={t.patient_id}>
            <button type="button" className="conversation" onClick={() => onOpen(t.patient_id)}>
              <span className="title">{t.patient_name}</span>
              <span className="meta">
                Last message <When at={t.last_message_at} withDay />
              </span>
              {t.unread > 0 && <span className="unread">{t.unread} unread from the patient</span>}
            </button>
          </li>
        ))}
      </ul>
      <label htmlFor="patient-filter">Write to another patient (name or MRN)</label>
      <input id="patient-filter" value={filter} onChange={(e) => setFilter(e.target.value)} maxLength={100} />
      {others.length > 0 && (
        <ul className="directory" aria-label="Patients found">
          {others.slice(0, 20).map((p) => (
            <li key={p.id}>
              <button type="button" className="secondary small" onClick={() => onOpen(p.id)}>
                {p.name}
                {p.mrn && ` (${p.mrn})`}
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="actions">
        <button type="button" className="secondary" onClick={onClose}>
          Close
        </button>
      </div>
    </section>
  );
}

const VIA: Record<string, string> = { portal: "on the secure page", sms: "by text message" };

function PatientThread({ patient, onBack }: { patient: string; onBack: () => void }) {
  const [view, setView] = useState<PatientThreadView | null>(null);
  const [sent, setSent] = useState<string | null>(null);
  const load = useAction();
  const send = useAction();
  const refresh = useCallback(async () => {
    const r = await load.run(() => ask({ op: "patientThread", patient }));
    if (r) setView(r);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [patient]);
  useEffect(() => {
    refresh();
    return onNews((n) => {
      if (n.event === "patient_notice" && n.patient === patient) refresh();
    });
  }, [refresh, patient]);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const id = await send.run(() =>
      ask({ op: "sendSecure", patient, text: String(f.get("secure") ?? ""), teamReadable: f.get("team") === "on" }),
    );
    if (id !== null) {
      form.reset();
      setSent("Sent: the patient gets a text with a link, and reads the message after confirming who they are.");
      refresh();
    }
  };
  const p = view?.patient;
  return (
    <section className="conversation-view" aria-labelledby="patient-thread-heading">
      <h2 id="patient-thread-heading">{p ? p.name : "Patient"}</h2>
      <Problem failure={load.failure} />
      {p && (
        <p className="patient">
          {p.mrn && `${p.mrn} · `}Consents to: {p.consent.length ? p.consent.join(", ").replace(/_/g, " ") : "nothing yet"}
          {p.sms_opted_out && " · texted STOP: nothing is sent until they text START"}
        </p>
      )}
      <ol className="messages" aria-label="Messages with the patient">
        {view?.messages.map((m) => (
          <li key={m.id} className={m.direction === "to_patient" ? "mine" : "theirs"}>
            <p className="meta">
              {m.direction === "to_patient" ? "To the patient" : `Patient ${VIA[m.via] ?? ""}`}
              {m.direction === "to_patient" && (m.sealed ? " (sealed: only the writer and the patient)" : " (readable by the team)")} ·{" "}
              <When at={m.created_at} withDay />
              {m.read_at && m.direction === "to_patient" && " · read by the patient"}
            </p>
            <p className="text">
              {m.text || (m.sealed ? <em>Sealed by its writer's device: only they and the patient can read it.</em> : "")}
            </p>
            {m.looks_like_opt_out && (
              <p className="note">
                This reads like a request to stop texting: confirm with the patient and, if so, withdraw their consent.
              </p>
            )}
          </li>
        ))}
      </ol>
      {p && (
        <form onSubmit={submit}>
          <label htmlFor="secure">Secure message</label>
          <textarea id="secure" name="secure" rows={3} maxLength={4000} required />
          {p.secure_messages === "writer_chooses" && (
            <label className="check">
              <input type="checkbox" name="team" /> Readable by the practice team (otherwise only you and the patient can
              read it)
            </label>
          )}
          {p.secure_messages === "writer" && <p className="hint">Sealed in this browser: only you and the patient can read it.</p>}
          {p.secure_messages === "team" && <p className="hint">Readable by the practice team (organisation policy).</p>}
          <Problem failure={send.failure} />
          <div className="actions">
            <button type="submit" disabled={send.busy}>
              {send.busy ? "Sending…" : "Send secure message"}
            </button>
            <button type="button" className="secondary" onClick={onBack}>
              All patients
            </button>
          </div>
        </form>
      )}
      {sent && <p role="status">{sent}</p>}
      {p && <TemplateForm patient={p} onSent={refresh} />}
    </section>
  );
}

/** The server's own placeholders: never asked of the sender. */
const SERVER_FILLS = new Set(["link", "expires_hours", "practice_phone", "code"]);

/** An input type for a placeholder, as the server reads its value. */
function inputType(placeholder: string): string {
  if (placeholder.endsWith("date")) return "date";
  if (placeholder.endsWith("time")) return "time";
  if (placeholder.endsWith("phone")) return "tel";
  return "text";
}

/**
 * A text from one of the organisation's approved templates, in the
 * patient's language: a reminder goes as a plain text (no health
 * information), a `phi` one as a secure message behind a link.
 */
function TemplateForm({ patient, onSent }: { patient: PatientThreadView["patient"]; onSent: () => void }) {
  const [templates, setTemplates] = useState<Template[]>([]);
  const [key, setKey] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const { busy, failure, run } = useAction();
  useEffect(() => {
    ask({ op: "templates" }).then((r) => {
      if (!r.ok) return;
      // The notice that announces a secure message is the server's to send.
      const mine = r.value.filter((t) => t.language === patient.language && t.key !== "new_secure_message");
      setTemplates(mine);
      setKey(mine[0]?.key ?? "");
    });
  }, [patient.language]);
  const t = templates.find((x) => x.key === key);
  if (templates.length === 0) return null;
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (!t) return;
    const f = new FormData(e.currentTarget);
    const params = Object.fromEntries(
      t.placeholders.filter((x) => !SERVER_FILLS.has(x)).map((x) => [x, String(f.get(`param-${x}`) ?? "")]),
    );
    setDone(null);
    const status = await run(() => ask({ op: "sendTemplate", patient: patient.id, template: t.key, params }));
    if (status) {
      setDone(status === "queued" ? "Queued: it goes when the patient's quiet hours end, or in a moment." : "Sent.");
      onSent();
    }
  };
  return (
    <form onSubmit={submit} className="template">
      <h3>Send a text from a template</h3>
      <label htmlFor="template">Template</label>
      <select id="template" value={key} onChange={(e) => setKey(e.target.value)}>
        {templates.map((x) => (
          <option key={x.key} value={x.key}>
            {x.key.replace(/_/g, " ")}
          </option>
        ))}
      </select>
      {t && (
        <>
          <p className="hint">
            {t.class === "phi"
              ? "Health information: sent as a secure message behind a link."
              : "A plain text: no health information."}{" "}
            “{t.body}”
            {t.sms && ` (${t.sms.segments} SMS part${t.sms.segments === 1 ? "" : "s"})`}
          </p>
          {t.placeholders
            .filter((x) => !SERVER_FILLS.has(x))
            .map((x) => (
              <div key={`${t.key}/${x}`}>
                <label htmlFor={`param-${x}`}>{x.replace(/_/g, " ")}</label>
                <input id={`param-${x}`} name={`param-${x}`} type={inputType(x)} required />
              </div>
            ))}
        </>
      )}
      <Problem failure={failure} />
      <button type="submit" disabled={busy}>
        {busy ? "Sending…" : "Send text"}
      </button>
      {done && <p role="status">{done}</p>}
    </form>
  );
}
