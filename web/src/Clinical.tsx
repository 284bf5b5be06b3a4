// The clinical workflow around the chat: urgent and STAT messages waiting
// for acknowledgement, the escalation ladder as the sender follows it,
// paging a clinical role, presence, the directory, recall and search over
// this device's history. The worker talks to the server (clinical.ts); the
// server decides who is on call and what the ladder does next.
import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from "react";
import { Problem, useAction, useKeptFresh } from "./ui";
import { ask, onNews } from "./session";
import { excerpt, PRIORITY_LABEL, PriorityBadge, When } from "./format";
import type {
  AwaitingView,
  DirectoryEntry,
  EscalationAction,
  EscalationView,
  GrantView,
  Message,
  PageResult,
  PatientView,
  Presence,
  PresenceStatus,
  Priority,
  RecallView,
  ResolvedVia,
  SearchView,
} from "./worker/protocol";

/** How often what waits for acknowledgement is asked again, besides on news (ms). */
const AWAITING_POLL_MS = 10_000;

const VIA: Record<ResolvedVia, string> = {
  on_call: "on call",
  backup: "the on-call backup",
  holder: "holds the role; nobody is on call",
  fallback_role: "the fallback role; nobody covers or holds it",
};

/** What a ladder step did, for the sender. */
function stepLabel(action: EscalationAction, users: string[]): string {
  const who = users.join(", ");
  if (users.length === 0 && !["acknowledged", "unanswered", "handoff"].includes(action)) {
    return `${ACTION[action]}: nobody to reach, the next step ran at once`;
  }
  switch (action) {
    case "acknowledged":
      return `Acknowledged${who ? ` by ${who}` : ""}`;
    case "unanswered":
      return "Nobody acknowledged: the escalation ladder ran out";
    default:
      return `${ACTION[action]}: ${who}`;
  }
}

const ACTION: Record<EscalationAction, string> = {
  renotify: "Alerted again",
  backup: "Backup brought in",
  fallback_role: "Fallback role brought in",
  department: "Department brought in",
  sms: "Texted a sign-in link (no message content)",
  handoff: "Shift handed over",
  acknowledged: "Acknowledged",
  unanswered: "Nobody acknowledged",
};

const NEXT: Record<EscalationAction, string> = {
  renotify: "alert again",
  backup: "bring in the backup",
  fallback_role: "bring in the fallback role",
  department: "bring in the department",
  sms: "text a sign-in link",
  handoff: "hand over",
  acknowledged: "acknowledged",
  unanswered: "say nobody acknowledged",
};

/** One line on where an escalation stands. */
export function escalationState(e: EscalationView, mine: boolean): string {
  switch (e.state) {
    case "acknowledged":
      return `Acknowledged by ${e.acknowledged?.by ?? "a colleague"}`;
    case "exhausted":
      return mine
        ? "Nobody acknowledged: the escalation ladder ran out"
        : "Nobody has acknowledged this yet; the escalation ladder ran out";
    case "open":
      return "Waiting for acknowledgement";
    default:
      return "";
  }
}

/**
 * The escalation of one of my urgent or STAT messages, as it happens: who
 * it reached and why, each step of the ladder, the next one and when.
 */
export function EscalationLadder({ e }: { e: EscalationView }) {
  return (
    <section className={`ladder ${e.state}`} aria-label="Escalation">
      <p className="state">
        <strong>{escalationState(e, true)}</strong>
        {e.acknowledged && (
          <>
            {" "}
            at <When at={e.acknowledged.at} />
          </>
        )}
        {e.merged && " (joined the open escalation of an earlier message here)"}
      </p>
      <ol>
        <li>
          <When at={e.createdAt} /> Sent{e.role ? ` to ${e.role}` : ""}
          {e.resolved ? `: ${e.resolved.name} (${VIA[e.resolved.via]})` : ""}
        </li>
        {e.events.map((x, i) => (
          <li key={i} className={x.action}>
            <When at={x.at} /> {stepLabel(x.action, x.users)}
          </li>
        ))}
      </ol>
      {e.next && (
        <p className="next">
          Next: {NEXT[e.next.action]} at <When at={e.next.at} />
        </p>
      )}
    </section>
  );
}

/** Acknowledge (and see who did) on someone else's urgent or STAT message. */
export function AcknowledgeBar({ e, onDone }: { e: EscalationView; onDone: (e: EscalationView) => void }) {
  const { busy, failure, run } = useAction();
  if (e.state === "acknowledged") {
    return (
      <p className="ack done">
        Acknowledged by {e.acknowledged?.by ?? "a colleague"}
        {e.acknowledged && (
          <>
            {" "}
            at <When at={e.acknowledged.at} />
          </>
        )}
      </p>
    );
  }
  if (e.state !== "open" && e.state !== "exhausted") return null;
  const ack = async () => {
    const r = await run(() => ask({ op: "acknowledge", conversation: e.conversation, message: e.message }));
    if (r) onDone(r);
  };
  return (
    <div className="ack">
      <p>{escalationState(e, false)}</p>
      <button type="button" onClick={ack} disabled={busy}>
        {busy ? "Acknowledging…" : "Acknowledge"}
      </button>
      <Problem failure={failure} />
    </div>
  );
}

/**
 * Across the top of the chat: urgent and STAT messages from others still
 * waiting for acknowledgement (anywhere, not only the open conversation),
 * and my own whose ladder ran out with nobody answering.
 */
export function AwaitingBanner({
  titleOf,
  onOpen,
}: {
  titleOf: (conversation: string) => string;
  onOpen: (conversation: string, message: string) => void;
}) {
  const [list, setList] = useState<AwaitingView[]>([]);
  const load = useCallback(async () => {
    const r = await ask({ op: "awaiting" });
    if (r.ok) setList(r.value);
  }, []);
  useKeptFresh(load, AWAITING_POLL_MS);
  if (list.length === 0) return null;
  return (
    <section className="awaiting" aria-label="Needs acknowledgement">
      <ul>
        {list.map((a) => (
          <AwaitingItem key={a.message.id} a={a} title={titleOf(a.conversation)} onOpen={onOpen} onDone={load} />
        ))}
      </ul>
    </section>
  );
}

function AwaitingItem({
  a,
  title,
  onOpen,
  onDone,
}: {
  a: AwaitingView;
  title: string;
  onOpen: (conversation: string, message: string) => void;
  onDone: () => void;
}) {
  const { busy, failure, run } = useAction();
  const m = a.message;
  const p = PRIORITY_LABEL[m.priority];
  const ack = async () => {
    if (await run(() => ask({ op: "acknowledge", conversation: a.conversation, message: m.id }))) onDone();
  };
  return (
    <li className={`${m.priority}${m.mine ? " unanswered" : ""}`}>
      <p>
        <PriorityBadge p={m.priority} />{" "}
        {m.mine ? (
          <>
            Nobody acknowledged your {p} message in {title}
          </>
        ) : (
          <>
            {p} from {m.sender_name ?? "a colleague"} in {title}
          </>
        )}{" "}
        · <When at={m.sent_at} />: {excerpt(m)}
      </p>
      <div className="actions">
        {!m.mine && (
          <button type="button" onClick={ack} disabled={busy}>
            {busy ? "Acknowledging…" : "Acknowledge"}
          </button>
        )}
        <button type="button" className="secondary" onClick={() => onOpen(a.conversation, m.id)}>
          Open
        </button>
      </div>
      <Problem failure={failure} />
    </li>
  );
}

/**
 * Page a clinical role by name: the server finds who covers it now; the
 * message goes to them, and the sender is told who it reached and why.
 */
export function PageForm({ onDone }: { onDone: (r: PageResult | null) => void }) {
  const [roles, setRoles] = useState<{ id: string; name: string; department: string | null }[]>([]);
  const { busy, failure, run } = useAction();
  useEffect(() => {
    ask({ op: "roles" }).then((r) => r.ok && setRoles(r.value));
  }, []);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const typed = String(f.get("role") ?? "").trim();
    const role = roles.find((r) => r.name.toLowerCase() === typed.toLowerCase());
    const r = await run(async () => {
      if (!role) {
        return {
          ok: false as const,
          error: {
            status: 0,
            code: "validation",
            message: typed ? `No clinical role is called "${typed}". Choose one from the list.` : "Choose the role to page.",
          },
        };
      }
      return ask({
        op: "page",
        role: role.id,
        patientRef: String(f.get("patient") ?? ""),
        text: String(f.get("text") ?? ""),
        priority: String(f.get("priority")) as Priority,
      });
    });
    if (r) onDone(r);
  };
  return (
    <section className="conversation-view" aria-labelledby="page-heading">
      <h2 id="page-heading">Page a role</h2>
      <p className="hint">The page reaches whoever covers the role now: on call, the backup, or the fallback.</p>
      <form onSubmit={submit}>
        <label htmlFor="page-role">Role</label>
        <input id="page-role" name="role" list="page-roles" autoComplete="off" required />
        <datalist id="page-roles">
          {roles.map((r) => (
            <option key={r.id} value={r.name}>
              {r.department ?? ""}
            </option>
          ))}
        </datalist>
        <label htmlFor="page-patient">Patient reference (optional)</label>
        <input id="page-patient" name="patient" maxLength={64} />
        <label htmlFor="page-text">Message</label>
        <textarea id="page-text" name="text" rows={3} required />
        <label htmlFor="page-priority">Priority</label>
        <select id="page-priority" name="priority" defaultValue="stat">
          <option value="stat">STAT</option>
          <option value="urgent">Urgent</option>
          <option value="routine">Routine</option>
        </select>
        <Problem failure={failure} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            {busy ? "Paging…" : "Page"}
          </button>
          <button type="button" className="secondary" onClick={() => onDone(null)}>
            Cancel
          </button>
        </div>
      </form>
    </section>
  );
}

const STATUS: Record<PresenceStatus, string> = {
  available: "Available",
  busy: "Busy",
  in_procedure: "In a procedure",
  off_duty: "Off duty",
};

/** "Until" as the `datetime-local` input writes it, in this browser's time zone. */
function localInput(secs: number): string {
  const d = new Date(secs * 1000 - new Date().getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/**
 * My availability: pages skip me (to the backup) while I am in a procedure
 * or off duty; "until" returns me to available on its own.
 */
export function PresenceControl() {
  const [p, setP] = useState<Presence | null>(null);
  const [editing, setEditing] = useState(false);
  const { busy, failure, run } = useAction();
  useEffect(() => {
    ask({ op: "presence" }).then((r) => r.ok && setP(r.value));
  }, []);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const until = String(f.get("until") ?? "");
    const r = await run(() =>
      ask({
        op: "setPresence",
        status: String(f.get("status")) as PresenceStatus,
        until: until ? Math.floor(new Date(until).getTime() / 1000) : null,
      }),
    );
    if (r) {
      setP(r);
      setEditing(false);
    }
  };
  if (!p) return null;
  return (
    <div className="presence">
      <p>
        Status: <strong>{STATUS[p.status]}</strong>
        {p.until && (
          <>
            {" "}
            until <When at={p.until} withDay />
          </>
        )}{" "}
        {!editing && (
          <button type="button" className="secondary small" onClick={() => setEditing(true)}>
            Change status
          </button>
        )}
      </p>
      {editing && (
        <form onSubmit={submit} className="presence-form">
          <label htmlFor="presence-status">Status</label>
          <select id="presence-status" name="status" defaultValue={p.status}>
            {(Object.keys(STATUS) as PresenceStatus[]).map((s) => (
              <option key={s} value={s}>
                {STATUS[s]}
              </option>
            ))}
          </select>
          <label htmlFor="presence-until">Until (optional)</label>
          <input id="presence-until" name="until" type="datetime-local" defaultValue={p.until ? localInput(p.until) : ""} />
          <Problem failure={failure} />
          <div className="actions">
            <button type="submit" disabled={busy}>
              Save status
            </button>
            <button type="button" className="secondary" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </div>
  );
}

/** Colleagues by name, role, department or care team; "Message" opens a conversation with one. */
export function DirectoryPanel({ me, onMessage, onClose }: { me: string; onMessage: (user: string) => void; onClose: () => void }) {
  const [entries, setEntries] = useState<DirectoryEntry[] | null>(null);
  const { busy, failure, run } = useAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const q = String(new FormData(e.currentTarget).get("q") ?? "");
    const r = await run(() => ask({ op: "findColleagues", query: q }));
    if (r) setEntries(r);
  };
  return (
    <section className="conversation-view" aria-labelledby="directory-heading">
      <h2 id="directory-heading">Directory</h2>
      <form onSubmit={submit} role="search" className="inline">
        <label htmlFor="directory-q">Name, role, department or team</label>
        <input id="directory-q" name="q" maxLength={100} required />
        <button type="submit" disabled={busy}>
          Find
        </button>
      </form>
      <Problem failure={failure} />
      {entries && entries.length === 0 && <p role="status">Nobody matches.</p>}
      {entries && entries.length > 0 && (
        <ul className="directory" aria-label="Colleagues found">
          {entries.map((e) => (
            <li key={e.user_id}>
              <p>
                <strong>{e.display_name}</strong> · {STATUS[e.presence]}
                {e.on_call.length > 0 && <> · on call: {e.on_call.join(", ")}</>}
              </p>
              <p className="meta">
                {[...e.roles, ...e.departments, ...e.care_teams].join(" · ") || "No clinical role"}
              </p>
              {e.user_id !== me && (
                <button type="button" className="secondary small" onClick={() => onMessage(e.user_id)}>
                  Message {e.display_name}
                </button>
              )}
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

/** A message with the words found in it marked. */
function Marked({ text, words }: { text: string; words: string[] }) {
  const lower = text.toLowerCase();
  const spans: [number, number][] = [];
  for (const w of words) {
    for (let i = lower.indexOf(w); i >= 0 && w; i = lower.indexOf(w, i + w.length)) spans.push([i, i + w.length]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  const out: ReactNode[] = [];
  let at = 0;
  for (const [s, e] of spans) {
    if (s < at) continue;
    out.push(text.slice(at, s), <mark key={s}>{text.slice(s, e)}</mark>);
    at = e;
  }
  out.push(text.slice(at));
  return <>{out}</>;
}

/**
 * Results of a search over the messages this device holds (decrypted only
 * here: the server cannot search them). Choosing one opens its conversation
 * at that message.
 */
export function SearchResults({
  query,
  titleOf,
  onOpen,
  onClose,
}: {
  query: string;
  titleOf: (conversation: string) => string;
  onOpen: (conversation: string, message: string, after: number) => void;
  onClose: () => void;
}) {
  const [found, setFound] = useState<SearchView | null>(null);
  useEffect(() => {
    ask({ op: "search", query }).then((r) => r.ok && setFound(r.value));
  }, [query]);
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return (
    <section className="conversation-view" aria-labelledby="search-heading">
      <h2 id="search-heading">Messages with “{query}”</h2>
      {found && (
        // How long the worker took (ms), for the tests and the benchmark.
        <p role="status" data-took-ms={found.tookMs.toFixed(1)}>
          {found.results.length === 0
            ? "No message on this device has these words."
            : `${found.results.length}${found.results.length === 50 ? "+" : ""} found on this device.`}
        </p>
      )}
      <ol className="found">
        {found?.results.map((r) => (
          <li key={r.message.id}>
            <button type="button" className="conversation" onClick={() => onOpen(r.conversation, r.message.id, r.after)}>
              <span className="title">{titleOf(r.conversation)}</span>
              <span className="meta">
                {r.message.mine ? "You" : (r.message.sender_name ?? "A colleague")} · <When at={r.message.sent_at} withDay />
              </span>
              <span className="text">
                <Marked text={r.message.content.text || excerpt(r.message)} words={words} />
              </span>
            </button>
          </li>
        ))}
      </ol>
      <div className="actions">
        <button type="button" className="secondary" onClick={onClose}>
          Close search
        </button>
      </div>
    </section>
  );
}

/**
 * Recall one of my messages (asked first: it cannot be undone). What the
 * recall found (who had read it) is the caller's to show: the message
 * itself turns into "Recalled" at once.
 */
export function RecallButton({ m, conversation, onDone }: { m: Message; conversation: string; onDone: (r: RecallView) => void }) {
  const [asking, setAsking] = useState(false);
  const { busy, failure, run } = useAction();
  const recall = async () => {
    const r = await run(() => ask({ op: "recall", conversation, message: m.id }));
    if (r) {
      setAsking(false);
      onDone(r);
    }
  };
  if (!asking) {
    return (
      <button type="button" className="secondary small reply" onClick={() => setAsking(true)} aria-label={`Recall: ${excerpt(m)}`}>
        Recall
      </button>
    );
  }
  return (
    <div className="recall-confirm" role="group" aria-label="Recall this message">
      <p>Recall this message from every device? Anyone who read it already will be listed.</p>
      <button type="button" onClick={recall} disabled={busy}>
        {busy ? "Recalling…" : "Recall from every device"}
      </button>
      <button type="button" className="secondary" onClick={() => setAsking(false)}>
        Keep it
      </button>
      <Problem failure={failure} />
    </div>
  );
}

const SERVER_COPY: Record<RecallView["serverCopy"], string> = {
  deleted: "The server's copy is deleted.",
  kept_under_legal_hold: "The server keeps its encrypted copy: a legal hold covers this conversation.",
  kept_for_retention_minimum: "The server keeps its encrypted copy until the retention minimum ends.",
};

/** What a recall found: when, the server's copy, and who had read it before. */
export function RecallOutcome({ r }: { r: RecallView }) {
  return (
    <div className="recalled" role="status">
      <p>
        Recalled at <When at={r.recalledAt} />. {SERVER_COPY[r.serverCopy]}
      </p>
      {r.readBefore.length > 0 ? (
        <p>
          Read before the recall by{" "}
          {r.readBefore.map((x, i) => (
            <span key={i}>
              {i > 0 && ", "}
              {x.name} (<When at={x.at} />)
            </span>
          ))}
          .
        </p>
      ) : (
        <p>Nobody had read it.</p>
      )}
      {r.deliveredUnread.length > 0 && <p>Delivered, not read: {r.deliveredUnread.join(", ")}.</p>}
    </div>
  );
}

const VIA_ACCESS: Record<PatientView["conversations"][number]["via"], string> = {
  member: "you are a member",
  care_team: "joined: you are on the care team",
  department: "joined: you hold a role in the care team's department",
  break_glass: "break-glass",
};

/**
 * A patient's threads: open them as care team, or — when this person is
 * not on the care team — break the glass with a stated reason, which the
 * compliance officer reviews and which lasts a limited time.
 */
export function PatientPanel({
  titleOf,
  onOpen,
  onClose,
}: {
  titleOf: (conversation: string) => string;
  onOpen: (conversation: string) => void;
  onClose: () => void;
}) {
  const [patient, setPatient] = useState("");
  const [needsReason, setNeedsReason] = useState<string | null>(null);
  const [opened, setOpened] = useState<PatientView | null>(null);
  const { busy, failure, run } = useAction();
  const open = async (reason: string | null) => {
    let askedForReason: string | null = null;
    const r = await run(async () => {
      const answer = await ask({ op: "openPatient", patientRef: patient, reason });
      // Not on the care team, and allowed to break the glass: ask why.
      if (!answer.ok && answer.error.code === "break_glass_reason_required") {
        askedForReason = answer.error.message;
        return { ok: true as const, value: null };
      }
      return answer;
    });
    if (askedForReason) setNeedsReason(askedForReason);
    if (r) {
      setNeedsReason(null);
      setOpened(r);
    }
  };
  const until = (id: string) => opened?.grants.find((g) => g.conversation === id)?.until;
  return (
    <section className="conversation-view" aria-labelledby="patient-heading">
      <h2 id="patient-heading">Open a patient</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setOpened(null);
          setNeedsReason(null);
          open(null);
        }}
        className="inline"
      >
        <label htmlFor="patient-ref">Patient reference</label>
        <input
          id="patient-ref"
          name="patient"
          maxLength={100}
          required
          value={patient}
          onChange={(e) => setPatient(e.target.value)}
        />
        <button type="submit" disabled={busy || !!needsReason}>
          Open
        </button>
      </form>
      {needsReason && (
        <form
          className="break-glass"
          onSubmit={(e) => {
            e.preventDefault();
            open(String(new FormData(e.currentTarget).get("reason") ?? ""));
          }}
        >
          <h3>Break the glass</h3>
          <p>{needsReason.charAt(0).toUpperCase() + needsReason.slice(1)}.</p>
          <p>
            Access is recorded, reviewed by the compliance officer, and ends on its own after the time your organisation
            sets.
          </p>
          <label htmlFor="break-glass-reason">Why do you need access now?</label>
          <textarea id="break-glass-reason" name="reason" rows={3} minLength={10} maxLength={500} required />
          <div className="actions">
            <button type="submit" className="danger" disabled={busy}>
              {busy ? "Opening…" : "Break the glass"}
            </button>
            <button type="button" className="secondary" onClick={() => setNeedsReason(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      <Problem failure={failure} />
      {opened && (
        <ul className="directory" aria-label="Patient's threads">
          {opened.conversations.map((c) => (
            <li key={c.id}>
              <p>
                <strong>{titleOf(c.id)}</strong> · {VIA_ACCESS[c.via]}
                {until(c.id) && (
                  <>
                    {" "}
                    until <When at={until(c.id)!} withDay />
                  </>
                )}
              </p>
              <button type="button" className="secondary small" onClick={() => onOpen(c.id)}>
                Open {titleOf(c.id)}
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

/** How often running break-glass access is asked again (ms): it ends on its own. */
const BREAK_GLASS_POLL_MS = 30_000;

/**
 * While break-glass access lasts, a banner says so — which thread, until
 * when, and the reason given — on every screen of the chat.
 */
export function BreakGlassBanner({ titleOf }: { titleOf: (conversation: string) => string }) {
  const [grants, setGrants] = useState<GrantView[]>([]);
  const load = useCallback(async () => {
    const r = await ask({ op: "breakGlass" });
    if (r.ok) setGrants(r.value);
  }, []);
  useKeptFresh(load, BREAK_GLASS_POLL_MS);
  if (grants.length === 0) return null;
  return (
    <section className="break-glass-banner" aria-label="Break-glass access">
      {grants.map((g) => (
        <p key={g.conversation}>
          <strong>Break-glass access</strong> to {titleOf(g.conversation)} until <When at={g.until} withDay />. Reason
          given: {g.reason}
        </p>
      ))}
    </section>
  );
}

/** Where an escalation text's link (`/alerts/{id}` → `/#alert=<id>`) is kept until signed in. */
const ALERT_LINK = "wardline.alert";

/**
 * Takes the message id an escalation text's link brought (`#alert=<id>`)
 * out of the address — kept for this tab only, until sign-in and the PIN
 * lead to it — so that it is in no history entry, bookmark or screenshot.
 */
export function keepAlertLink() {
  const m = /^#alert=([0-9a-f-]{36})$/i.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(ALERT_LINK, m[1]);
  history.replaceState(null, "", location.pathname);
}

/** How long a link's message is waited for (it may still be on its way to this device), ms. */
const ALERT_LINK_WAIT_MS = 60_000;

/**
 * Once the chat is open: to the message an escalation text's link named,
 * as soon as it is on this device; said plainly if it does not come.
 */
export function useAlertLink(open: (conversation: string, message: string, after: number) => void) {
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    const id = sessionStorage.getItem(ALERT_LINK);
    if (!id) return;
    let done = false;
    const look = async () => {
      if (done) return;
      const r = await ask({ op: "locate", message: id });
      if (r.ok && r.value && !done) {
        done = true;
        sessionStorage.removeItem(ALERT_LINK);
        open(r.value.conversation, id, r.value.after);
      }
    };
    look();
    const off = onNews((n) => {
      if (n.event === "changed") look();
    });
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      sessionStorage.removeItem(ALERT_LINK);
      setMissing(true);
    }, ALERT_LINK_WAIT_MS);
    return () => {
      off();
      clearTimeout(timer);
    };
    // Once per opening of the chat.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return missing;
}
