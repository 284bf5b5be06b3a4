// The clinical workflow around the chat, inside the worker: urgent and STAT
// messages waiting for acknowledgement and their escalation ladders, paging
// a clinical role, presence, the directory, recall, and search over the
// history this device holds. The server decides (who is on call, what the
// ladder does next); the page shows it. Escalations are fetched per message
// and kept for a short while; an alert entry about a message fetches it again.
import type { components } from "../api/schema";
import { api, call, Failed } from "./api";
import * as device from "./device";
import type {
  AwaitingView,
  CoreEvent,
  EscalationView,
  Message,
  GrantView,
  PageResult,
  PatientView,
  Priority,
  RecallView,
  SearchView,
} from "./protocol";

type S = components["schemas"];

/** How far back urgent messages may still wait for acknowledgement (seconds). */
const ALERT_WINDOW_SECS = 24 * 3600;
/** An escalation fetched longer ago than this is fetched again (ms). */
const STALE_MS = 15_000;
/** Search results handed to the page at most. */
const SEARCH_LIMIT = 50;

const escalations = new Map<string, { e: S["Escalation"]; at: number }>();
let roleNames: Map<string, { name: string; department: string | null }> | null = null;

// An alert entry (a ladder step, an acknowledgement, a ladder that ran out)
// or a recall changes what the server says about that message: ask again.
device.onEvents((events: CoreEvent[]) => {
  for (const e of events) {
    if (e.kind === "alert") escalations.delete(e.alert.message_id);
    if (e.kind === "removed") grants = null;
    if (e.kind === "recalled") escalations.delete(e.message);
  }
});

// What this module keeps goes with the device.
device.onClose(() => {
  escalations.clear();
  grants = null;
  roleNames = null;
});

async function roles() {
  if (!roleNames) {
    const dir = await call(() => api.GET("/api/v1/routing/directory"));
    const depts = new Map(dir.departments.map((d) => [d.id, d.name]));
    roleNames = new Map(
      dir.roles.map((r) => [r.id, { name: r.name, department: r.department_id ? (depts.get(r.department_id) ?? null) : null }]),
    );
  }
  return roleNames;
}

/** Clinical roles, for paging by name: `{ id, name, department }`, by name. */
export async function roleList() {
  device.open();
  roleNames = null;
  return [...(await roles())]
    .map(([id, r]) => ({ id, ...r }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function nameOf(id: string | null | undefined): string {
  if (!id) return "";
  return device.names()[id] ?? "A colleague";
}

/** The server's escalation of one message, fetched or as kept (`fresh`: fetch anyway). */
async function escalation(conv: string, message: string, fresh = false): Promise<S["Escalation"]> {
  const kept = escalations.get(message);
  // Acknowledged (or routine) stays so: kept until an alert says otherwise.
  const settled = kept && (kept.e.state === "acknowledged" || kept.e.state === "none");
  if (kept && !fresh && (settled || Date.now() - kept.at < STALE_MS)) return kept.e;
  const e = await call(() =>
    api.GET("/api/v1/conversations/{id}/messages/{message_id}/escalation", {
      params: { path: { id: conv, message_id: message } },
    }),
  );
  escalations.set(message, { e, at: Date.now() });
  return e;
}

/**
 * Where a message's escalation stands, with names. A message that joined
 * an open escalation in the same conversation (`merged`) stands where that
 * one stands.
 */
async function view(conv: string, message: string, fresh = false): Promise<EscalationView> {
  let e = await escalation(conv, message, fresh);
  const own = e;
  if (e.state === "merged" && e.merged_into) e = await escalation(conv, e.merged_into, fresh);
  const role = e.role_id ? ((await roles().catch(() => null))?.get(e.role_id)?.name ?? null) : null;
  return {
    message: own.message_id,
    conversation: own.conversation_id,
    priority: own.priority as Priority,
    state: e.state,
    merged: own.state === "merged",
    role,
    sender: nameOf(e.sender_user),
    resolved: e.resolved_user && e.resolved_via ? { name: nameOf(e.resolved_user), via: e.resolved_via } : null,
    notified: e.notified.map(nameOf),
    events: e.events.map((x) => ({ at: x.at, action: x.action, users: x.users.map(nameOf), sms: x.sms })),
    next: e.next_at && e.next_action ? { at: e.next_at, action: e.next_action } : null,
    acknowledged: e.acknowledged_by && e.acknowledged_at ? { by: nameOf(e.acknowledged_by), at: e.acknowledged_at } : null,
    createdAt: e.created_at,
  };
}

/** Escalations of messages in one conversation (the sender's ladder, a recipient's banner). */
export async function escalationsOf(conv: string, messages: string[]): Promise<Record<string, EscalationView>> {
  device.open();
  const out: Record<string, EscalationView> = {};
  for (const m of messages) {
    try {
      out[m] = await view(conv, m);
    } catch (e) {
      // Gone (recalled, expired) or out of reach: nothing to show for it.
      if (!(e instanceof Failed)) throw e;
    }
  }
  return out;
}

/**
 * Urgent and STAT messages of the last day that still need someone: from
 * others, those not acknowledged (open, or the ladder ran out) — this
 * person may acknowledge them; this person's own whose ladder ran out with
 * nobody answering. Newest first.
 */
export async function awaiting(): Promise<AwaitingView[]> {
  const d = device.open();
  const since = (d.server_time() || Math.floor(Date.now() / 1000)) - ALERT_WINDOW_SECS;
  const urgent = JSON.parse(d.urgent(since)) as { conversation: string; message: Message }[];
  const out: AwaitingView[] = [];
  for (const { conversation, message } of urgent) {
    let e: EscalationView;
    try {
      e = await view(conversation, message.id);
    } catch (err) {
      if (err instanceof Failed && err.failure.code !== "unavailable") continue;
      throw err;
    }
    const waiting = e.state === "open" || e.state === "exhausted";
    if (message.mine ? e.state === "exhausted" : waiting) {
      out.push({ conversation, message: device.forPage(message), escalation: e });
    }
  }
  return out;
}

/** Acknowledges an urgent or STAT message: its ladder stops, everyone alerted is told. */
export async function acknowledge(conv: string, message: string): Promise<EscalationView> {
  device.open();
  await call(() =>
    api.POST("/api/v1/conversations/{id}/messages/{message_id}/acknowledge", {
      params: { path: { id: conv, message_id: message } },
    }),
  );
  escalations.delete(message);
  const v = await view(conv, message, true);
  device.changed();
  return v;
}

/**
 * Pages a clinical role: the server finds who covers it now (on call, the
 * backup, a holder, the fallback role) and opens this person's conversation
 * with them; this device brings its group in line, then sends the message.
 */
export async function page(role: string, patientRef: string, text: string, priority: Priority): Promise<PageResult> {
  device.open();
  if (!text.trim()) throw new Failed({ status: 422, code: "validation", message: "Write the message the page carries." });
  let answer: S["PageRoleResponse"] | null = null;
  await device.adopt(async () => {
    answer = await call(() =>
      api.POST("/api/v1/routing/roles/{id}/page", {
        params: { path: { id: role } },
        body: { patient_ref: patientRef.trim() || undefined },
      }),
    );
    return answer.conversation;
  });
  const a = answer as unknown as S["PageRoleResponse"];
  await device.send(a.conversation.id, text, priority, null);
  return {
    conversation: a.conversation.id,
    role: a.role_name,
    to: a.resolved_to.display_name,
    via: a.via,
    nobodyOnCall: a.nobody_on_call,
    notice: a.notice,
  };
}

export async function presence(): Promise<S["Presence"]> {
  device.open();
  return call(() => api.GET("/api/v1/routing/presence"));
}

export async function setPresence(status: S["PresenceStatus"], until: number | null): Promise<S["Presence"]> {
  device.open();
  return call(() => api.PUT("/api/v1/routing/presence", { body: { status, until: until ?? undefined } }));
}

/** Colleagues by name, clinical role, department or care team, with presence and on-call. */
export async function findColleagues(query: string): Promise<S["DirectoryEntry"][]> {
  device.open();
  const q = query.trim();
  if (!q) return [];
  return (await call(() => api.GET("/api/v1/routing/search", { params: { query: { q: q.slice(0, 100) } } }))).entries;
}

/**
 * Recalls one of this person's messages: the server deletes its copy
 * (unless a hold or a retention minimum keeps it) and tells every device to
 * delete theirs; the answer says who had already read it.
 */
export async function recall(conv: string, message: string): Promise<RecallView> {
  device.open();
  const r = await call(() =>
    api.POST("/api/v1/conversations/{id}/messages/{message_id}/recall", {
      params: { path: { id: conv, message_id: message } },
    }),
  );
  escalations.delete(message);
  // This device's own copy goes the same way as everyone's: by the entry
  // the recall put in its inbox.
  await device.catchUp().catch(() => {});
  const read = new Map<string, number>();
  const delivered = new Set<string>();
  for (const x of r.recipients) {
    if (x.read_at) read.set(x.user_id, Math.min(read.get(x.user_id) ?? x.read_at, x.read_at));
    else if (x.delivered_at) delivered.add(x.user_id);
  }
  return {
    recalledAt: r.recalled_at,
    readBefore: [...read].map(([u, at]) => ({ name: nameOf(u), at })),
    deliveredUnread: [...delivered].filter((u) => !read.has(u)).map(nameOf),
    serverCopy: r.server_copy,
  };
}

/**
 * Opens a patient's threads: those whose care team (or department) includes
 * this person are joined; the others only by break-glass with `reason`
 * (refused with `break_glass_reason_required` without one). Each joined
 * thread's group takes this device in through a member's device; until
 * then it is listed as waiting.
 */
export async function openPatient(patientRef: string, reason: string | null): Promise<PatientView> {
  device.open();
  const r = await call(() =>
    api.POST("/api/v1/routing/patient-access", {
      body: { patient_ref: patientRef.trim(), reason: reason?.trim() || undefined },
    }),
  );
  if (r.grants.length) grants = null;
  for (const c of r.conversations) {
    await device.adopt(() =>
      call(() => api.GET("/api/v1/conversations/{id}", { params: { path: { id: c.conversation_id } } })),
    );
  }
  return {
    conversations: r.conversations.map((c) => ({ id: c.conversation_id, via: c.via })),
    grants: r.grants.map((g) => ({ conversation: g.conversation_id, until: g.expires_at })),
  };
}

/** Running grants as last fetched, and when (ms); fetched again when they can have changed. */
let grants: { list: GrantView[]; at: number } | null = null;
/** Grants are asked again at least this often (ms): one ended early, elsewhere. */
const GRANTS_STALE_MS = 60_000;

/**
 * This person's break-glass access still running: which threads, until
 * when, and why. The page asks on every change; the server is asked only
 * when the answer can differ — after opening a patient here, once the
 * earliest grant's time is up, when this device leaves a group, or after a
 * minute.
 */
export async function breakGlass(): Promise<GrantView[]> {
  device.open();
  const now = Date.now();
  const ends = Math.min(...(grants?.list.map((g) => g.until * 1000) ?? [Infinity]));
  if (grants && now - grants.at < GRANTS_STALE_MS && now < ends) return grants.list;
  const mine = await call(() => api.GET("/api/v1/routing/break-glass/mine"));
  const list = mine.grants.map((g) => ({ conversation: g.conversation_id, until: g.expires_at, reason: g.reason ?? "" }));
  grants = { list, at: now };
  return list;
}

/** Where a message is on this device (an alert link's), or null when it is not (yet). */
export function locate(message: string): { conversation: string; after: number } | null {
  const at = device.open().locate(message);
  return at ? JSON.parse(at) : null;
}

/** Messages on this device containing every word of `query` (partial, any case), newest first. */
export function search(query: string): SearchView {
  const d = device.open();
  const started = performance.now();
  const results = JSON.parse(d.search(query, SEARCH_LIMIT)) as SearchView["results"];
  const tookMs = performance.now() - started;
  return { results: results.map((r) => ({ ...r, message: device.forPage(r.message) })), tookMs };
}
