// The audit trail: search by actor, patient, device, action, outcome and
// time range, newest first a page at a time; one event's full record; and
// the export (CSV or JSON Lines) of what the filter finds.
import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import { Failure, Screen, useConsoleAction } from "./parts";

type S = components["schemas"];
type AuditEvent = S["AuditEvent"];
type Query = {
  actor?: string;
  patient?: string;
  device?: string;
  action?: string;
  outcome?: S["Outcome"];
  from_ms?: number;
  to_ms?: number;
};

const PAGE = 50;

/** User ids → names, for the people in the trail. */
export function useNames(): Record<string, string> {
  const [names, setNames] = useState<Record<string, string>>({});
  useEffect(() => {
    result(consoleApi.GET("/api/v1/users")).then((r) => {
      if (r.ok) setNames(Object.fromEntries(r.value.users.map((u) => [u.id, `${u.display_name} (${u.email})`])));
    });
  }, []);
  return names;
}

/** The actions the audit trail records, as the served API document lists them. */
function useActions(): string[] {
  const [actions, setActions] = useState<string[]>([]);
  useEffect(() => {
    fetch("/api/openapi.json")
      .then((r) => r.json())
      .then((doc) => setActions([...(doc?.components?.schemas?.AuditAction?.enum ?? [])].sort()))
      .catch(() => setActions([]));
  }, []);
  return actions;
}

/** What an event was done to: a person by name when the trail names a user. */
export function targetText(e: AuditEvent, names: Record<string, string>): string {
  if (!e.target_type) return "";
  if (e.target_type === "user" && e.target_id && names[e.target_id]) return `user ${names[e.target_id]}`;
  return `${e.target_type} ${e.target_id ?? ""}`;
}

export function actorText(e: AuditEvent, names: Record<string, string>): string {
  if (e.actor_kind === "user" && e.actor_id) return names[e.actor_id] ?? e.actor_id;
  if (e.actor_kind === "anonymous") return "Anonymous";
  if (e.actor_kind === "patient") return "A patient";
  return e.actor_id ?? e.actor_kind;
}

/** Unix milliseconds as a date and time with seconds. */
export function msTime(ms: number): string {
  return new Date(ms).toLocaleString([], {
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

const localMs = (v: FormDataEntryValue | null) => {
  const t = String(v ?? "");
  return t ? new Date(t).getTime() : undefined;
};

function queryOf(form: HTMLFormElement, names: Record<string, string>): Query {
  const f = new FormData(form);
  const text = (k: string) => String(f.get(k) ?? "").trim() || undefined;
  // An actor typed as a name or e-mail is looked up among the people.
  let actor = text("actor");
  if (actor) {
    const hit = Object.entries(names).find(([, n]) => n.toLowerCase() === actor!.toLowerCase());
    if (hit) actor = hit[0];
  }
  return {
    actor,
    patient: text("patient"),
    device: text("device"),
    action: text("action"),
    outcome: text("outcome") as S["Outcome"] | undefined,
    from_ms: localMs(f.get("from")),
    to_ms: localMs(f.get("to")),
  };
}

export function AuditSearch() {
  const names = useNames();
  const actions = useActions();
  const [query, setQuery] = useState<Query | null>(null);
  /** `before_seq` of each page shown so far (undefined: the newest). */
  const [pages, setPages] = useState<(number | undefined)[]>([undefined]);
  const [page, setPage] = useState<S["AuditPage"] | null>(null);
  const [open, setOpen] = useState<AuditEvent | null>(null);
  const { busy, failure, run } = useConsoleAction();
  const exporting = useConsoleAction();

  const load = useCallback(
    async (q: Query, before: number | undefined) => {
      const r = await run(() =>
        result(consoleApi.GET("/api/v1/audit/events", { params: { query: { ...q, before_seq: before, limit: PAGE } } })),
      );
      setPage(r ? r.value : null);
      setOpen(null);
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [],
  );
  useEffect(() => {
    const q = {};
    setQuery(q);
    load(q, undefined);
  }, [load]);

  const search = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const q = queryOf(e.currentTarget, names);
    setQuery(q);
    setPages([undefined]);
    load(q, undefined);
  };
  const older = () => {
    if (!query || !page?.next_before) return;
    setPages((p) => [...p, page.next_before ?? undefined]);
    load(query, page.next_before);
  };
  const newer = () => {
    if (!query || pages.length < 2) return;
    const rest = pages.slice(0, -1);
    setPages(rest);
    load(query, rest[rest.length - 1]);
  };
  const download = async (format: "csv" | "jsonl") => {
    if (!query) return;
    const r = await exporting.run(() =>
      result(
        consoleApi.GET("/api/v1/audit/export", {
          params: { query: { ...query, format } },
          parseAs: "blob",
        }),
      ),
    );
    if (!r) return;
    const url = URL.createObjectURL(r.value as Blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `wardline-audit-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.${format}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  const people = useMemo(() => Object.values(names).sort(), [names]);

  return (
    <Screen title="Audit trail">
      <form className="filters" onSubmit={search} aria-label="Audit search">
        <div>
          <label htmlFor="audit-actor">Who (name, e-mail or id)</label>
          <input id="audit-actor" name="actor" list="audit-people" autoComplete="off" />
          <datalist id="audit-people">
            {people.map((n) => (
              <option key={n} value={n} />
            ))}
          </datalist>
        </div>
        <div>
          <label htmlFor="audit-patient">Patient (reference or MRN)</label>
          <input id="audit-patient" name="patient" autoComplete="off" />
        </div>
        <div>
          <label htmlFor="audit-device">Device id</label>
          <input id="audit-device" name="device" autoComplete="off" />
        </div>
        <div>
          <label htmlFor="audit-action">Action</label>
          <select id="audit-action" name="action" defaultValue="">
            <option value="">Any action</option>
            {actions.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label htmlFor="audit-outcome">Outcome</label>
          <select id="audit-outcome" name="outcome" defaultValue="">
            <option value="">Any outcome</option>
            <option value="success">Success</option>
            <option value="failure">Failure</option>
            <option value="denied">Denied</option>
          </select>
        </div>
        <div>
          <label htmlFor="audit-from">From</label>
          <input id="audit-from" name="from" type="datetime-local" />
        </div>
        <div>
          <label htmlFor="audit-to">Until</label>
          <input id="audit-to" name="to" type="datetime-local" />
        </div>
        <div className="actions">
          <button type="submit" disabled={busy}>
            Search
          </button>
        </div>
      </form>
      <div className="actions">
        <button type="button" className="secondary" disabled={exporting.busy} onClick={() => download("csv")}>
          Export CSV
        </button>
        <button type="button" className="secondary" disabled={exporting.busy} onClick={() => download("jsonl")}>
          Export JSON Lines
        </button>
      </div>
      <Failure failure={exporting.failure} />
      <Failure failure={failure} />
      {page && (
        <>
          <p role="status">
            {page.events.length === 0
              ? "Nothing matches."
              : `Page ${pages.length}: ${page.events.length} events, newest first${page.next_before ? "" : " (the last page)"}.`}
          </p>
          {page.events.length > 0 && (
            <div className="table-scroll">
              <table className="audit">
                <caption className="visually-hidden">Audit events</caption>
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">When</th>
                    <th scope="col">Who</th>
                    <th scope="col">Action</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">Patient</th>
                    <th scope="col">Target</th>
                  </tr>
                </thead>
                <tbody>
                  {page.events.map((e) => (
                    <tr key={e.seq} className={open?.seq === e.seq ? "open" : undefined}>
                      <td>
                        <button type="button" className="link" onClick={() => setOpen(e)} aria-label={`Event ${e.seq}: full record`}>
                          {e.seq}
                        </button>
                      </td>
                      <td>{msTime(e.at_ms)}</td>
                      <td>{actorText(e, names)}</td>
                      <td>
                        <code>{e.action}</code>
                      </td>
                      <td className={`outcome ${e.outcome}`}>{e.outcome}</td>
                      <td>{e.patient_id ?? ""}</td>
                      <td>{targetText(e, names)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div className="actions">
            <button type="button" className="secondary" disabled={busy || pages.length < 2} onClick={newer}>
              Newer
            </button>
            <button type="button" className="secondary" disabled={busy || !page.next_before} onClick={older}>
              Older
            </button>
          </div>
        </>
      )}
      {open && <EventRecord event={open} names={names} onClose={() => setOpen(null)} />}
    </Screen>
  );
}

function EventRecord({ event, names, onClose }: { event: AuditEvent; names: Record<string, string>; onClose: () => void }) {
  const rows: [string, string | null | undefined][] = [
    ["Sequence number", String(event.seq)],
    ["When", `${msTime(event.at_ms)} (${new Date(event.at_ms).toISOString()})`],
    ["Who", `${actorText(event, names)} — ${event.actor_kind}`],
    ["Action", event.action],
    ["Outcome", event.outcome],
    ["Reason", event.reason],
    ["Patient", event.patient_id],
    ["Target", event.target_type ? `${targetText(event, names)} (${event.target_id ?? ""})` : null],
    ["Device", event.device_id],
    ["Address", event.source_ip],
    ["Browser or app", event.user_agent],
    ["Merkle leaf hash", event.leaf_hash],
  ];
  return (
    <section className="panel record" aria-labelledby="record-title">
      <h3 id="record-title">Event {event.seq}</h3>
      <dl className="facts">
        {rows
          .filter(([, v]) => v)
          .map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{k === "Merkle leaf hash" ? <code className="hash">{v}</code> : v}</dd>
            </div>
          ))}
      </dl>
      {event.changes && event.changes.length > 0 && (
        <table>
          <caption>What changed</caption>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {event.changes.map((c, i) => (
              <tr key={i}>
                <th scope="row">{c.field}</th>
                <td>{c.before ?? "—"}</td>
                <td>{c.after ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <button type="button" className="secondary" onClick={onClose}>
        Close the record
      </button>
    </section>
  );
}
