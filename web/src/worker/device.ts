// This browser's device, inside the worker: the wasm core (MLS keys, chat
// state, outbox) and its sealed IndexedDB record, driven over the API. The
// core makes the request bodies; this module sends them and hands answers
// back, in the core's order: apply → persist → acknowledge, encrypt →
// persist → submit. Only one tab's worker drives a device at a time (Web
// Locks); every change to the core runs in `exclusive`, one after another.
import init, { Device, max_read_ids, open_attachment, seal_attachment } from "../wasm/wardline_client_wasm.js";
import type { components } from "../api/schema";
import { api, call, Failed, post } from "./api";
import * as store from "./store";
import type {
  Attachment,
  ConversationSummary,
  CoreEvent,
  DeviceState,
  MessageView,
  NewConversation,
  Message,
  ReceiptView,
} from "./protocol";

type S = components["schemas"];

/** Commits and sends retried after losing an epoch race (as the CLI). */
const MAX_ATTEMPTS = 5;
/** Key packages kept on the server; topped up below this. */
const KEY_PACKAGE_LOW_WATER = 5;
/** How often disappearing messages past their time are deleted here (ms). */
const EXPIRY_CHECK_MS = 15_000;
/** The store format this worker writes (the core's STORE_FORMAT). */
const STORE_FORMAT = 1;

let wasm: Promise<unknown> | null = null;
let device: Device | null = null;
let deviceId = "";
let releaseLock: (() => void) | null = null;
let socket: WebSocket | null = null;
let reconnectDelay = 1000;
let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
let expiryTimer: ReturnType<typeof setInterval> | undefined;
let directory: Record<string, string> = {};
/** The saved session as stored (sealed), written with every record (store.ts). */
let sessionSealed: Uint8Array | null = null;
/** A device opened with the PIN by `openSaved`, waiting for the session check. */
let pending: Device | null = null;
/** Whether the last attempt to reach the server succeeded. */
let online = true;
/** This device was set up on a shared computer (kept in its record). */
let shared = false;

const now = () => Math.floor(Date.now() / 1000);

function loadWasm() {
  wasm ??= init();
  return wasm;
}

// One change at a time: the socket, the page's sends and the reconnect's
// catch-up all change the same core.
let chain: Promise<unknown> = Promise.resolve();
export function exclusive<T>(f: () => Promise<T>): Promise<T> {
  const r = chain.then(f);
  chain = r.catch(() => {});
  return r;
}

export function open(): Device {
  if (!device) throw new Failed({ status: 423, code: "locked", message: "Unlock with your PIN first." });
  return device;
}

/** A change not stored yet (see `send`). */
let unsaved = false;

async function persist() {
  const d = open();
  unsaved = false;
  clearTimeout(soon);
  await store.save(deviceId, {
    format: STORE_FORMAT,
    user: d.user(),
    sealed: d.seal(),
    savedAt: Date.now(),
    ...(sessionSealed ? { session: sessionSealed } : {}),
    ...(shared ? { shared: true } : {}),
  });
}

let soon: ReturnType<typeof setTimeout> | undefined;

/**
 * Stores a change within a second, with whatever comes meanwhile: for
 * changes that are safe to lose. A message the server accepted but whose
 * acceptance was not stored stays in the outbox with its ciphertext, and
 * sending it again is answered as a duplicate (same id), never stored twice;
 * an unread mark not stored counts the messages unread again. Each write
 * seals the whole state, so a send costs one write, not two.
 */
function persistSoon() {
  clearTimeout(soon);
  soon = setTimeout(() => {
    if (device) exclusive(persist).catch(() => {});
  }, 1000);
}

/** Tells the page when the server stops or starts answering. */
function reached(yes: boolean) {
  if (yes === online) return;
  online = yes;
  post({ event: "connection", offlineSince: offlineSince() });
}

/** Since when (the server's last answer, Unix seconds) this device is offline; null when online. */
function offlineSince(): number | null {
  if (online || !device) return null;
  return device.server_time() || null;
}

export function changed() {
  post({ event: "changed" });
}

// ------------------------------------------------------------ one writer

/**
 * Takes this device's Web Lock: `false` when another tab holds it (unless
 * `takeOver`, which takes it from that tab). Losing it later — another tab
 * took over — drops the core at once and tells the page.
 */
async function lock(takeOver: boolean): Promise<boolean> {
  if (releaseLock) return true;
  return new Promise((resolve) => {
    navigator.locks
      .request(`wardline-device:${deviceId}`, takeOver ? { steal: true } : { ifAvailable: true }, (l) => {
        if (!l) {
          resolve(false);
          return undefined;
        }
        resolve(true);
        return new Promise<void>((release) => {
          releaseLock = release;
        });
      })
      .catch(() => {
        // Another tab took this device over: stop writing now.
        releaseLock = null;
        close();
        post({ event: "elsewhere" });
      });
  });
}

/** What other modules keep about the open device, forgotten with it. */
const forgetters: (() => void)[] = [];
export function onClose(f: () => void) {
  forgetters.push(f);
}

/**
 * Sign-in said this is a shared computer (or not). A device set up there
 * keeps the mark in its record, whoever unlocks it later.
 */
export function sharedComputer(yes: boolean) {
  shared = yes;
}

export function isShared(): boolean {
  return shared;
}

/**
 * Takes this browser out of the person's devices — the server ends its
 * sessions and takes it out of every conversation (a wipe of one's own
 * device, with the reason) — and erases its store; the erasure is
 * confirmed with the ended session, as after any wipe. For sign-out on a
 * shared computer, or whenever the person asks.
 */
export async function removeThisDevice(id: string) {
  close();
  shared = false;
  await api
    .POST("/api/v1/devices/{id}/wipe", {
      params: { path: { id } },
      body: { reason: "Removed by its user at sign-out" },
    })
    .catch(() => {});
  await store.eraseAll();
  await api.POST("/api/v1/devices/wipe-confirmation", { body: { erased: true } }).catch(() => {});
}

/**
 * A new tab on a browser whose device was set up on a shared computer and
 * is open in no other tab: whoever used it closed the tab without signing
 * out. Nothing of theirs may wait there for the next person, so the store is
 * erased. (The server keeps the device until an administrator removes it:
 * the session that could remove it is sealed under a PIN nobody here has.)
 */
export async function eraseIfLeftBehind(id: string): Promise<boolean> {
  const record = await store.load(id).catch(() => undefined);
  if (!record?.shared) return false;
  const { held } = await navigator.locks.query();
  if (held?.some((l) => l.name === `wardline-device:${id}`)) return false;
  await store.eraseAll();
  return true;
}

/** Erases this browser's store (a shared computer's session ended). */
export async function eraseStore() {
  close();
  shared = false;
  await store.eraseAll();
}

/** Forgets the open device (keys and messages leave memory) and lets go. */
export function close() {
  for (const f of forgetters) f();
  clearTimeout(reconnectTimer);
  clearInterval(expiryTimer);
  clearTimeout(soon);
  clearTimeout(readTimer);
  toMarkRead.clear();
  reportedRead.clear();
  receiptCache.clear();
  receiptsMandatory.clear();
  lifespans.clear();
  directs.clear();
  sessionSealed = null;
  pending?.free();
  pending = null;
  online = true;
  socket?.close();
  socket = null;
  device?.free();
  device = null;
  releaseLock?.();
  releaseLock = null;
}

// ------------------------------------------------------------ open / create

/** The organisation's device policy, as the server says it now. */
async function policy(): Promise<S["DevicePolicy"]> {
  return (await call(() => api.GET("/api/v1/devices/posture"))).policy;
}

/** The shortest PIN the policy allows (0: none required). */
function minPin(p: S["DevicePolicy"]): number {
  return p.require_local_pin ? p.min_pin_length : 0;
}

export async function state(id: string): Promise<DeviceState> {
  deviceId = id;
  // Open: the policy as the last sync kept it (offline too). Otherwise the
  // server's; offline, a stored device can still be unlocked without it.
  const kept = device?.policy();
  const p: S["DevicePolicy"] | null = kept ? JSON.parse(kept) : await policy().catch(() => null);
  const rules = {
    minPin: p ? minPin(p) : 0,
    lockAfterIdleSecs: p?.lock_after_idle_secs ?? null,
    allowCopy: p?.allow_copy ?? false,
    allowForwarding: p?.allow_forwarding ?? false,
    offlineSince: offlineSince(),
    shared,
  };
  if (device) return { step: "open", ...rules };
  if (!(await lock(false))) return { step: "elsewhere", ...rules };
  const stored = await store.load(id);
  if (stored?.shared) shared = true;
  rules.shared = shared;
  // A new device is registered with the server: it cannot start offline.
  if (!stored && !p) return { ...rules, step: "new", minPin: minPin(await policy()) };
  return { step: stored ? "locked" : "new", ...rules };
}

export async function takeOver(id: string): Promise<DeviceState> {
  deviceId = id;
  await lock(true);
  return state(id);
}

/** First use of this browser: a new device, sealed under `pin`, registered. */
export async function create(user: string, pin: string, name: string): Promise<void> {
  await loadWasm();
  const p = await policy();
  const d = Device.create(user, deviceId, pin, minPin(p));
  d.set_policy(JSON.stringify(p));
  device = d;
  const registration = JSON.parse(d.registration(name)) as S["RegisterDeviceRequest"];
  // The key packages' private keys are stored before the server can hand them out.
  await persist();
  try {
    await call(() => api.POST("/api/v1/devices", { body: registration }));
  } catch (e) {
    close();
    await store.eraseAll();
    if (e instanceof Failed && e.failure.code === "conflict") {
      throw new Failed({
        ...e.failure,
        message: "This browser was registered before but its local store is gone. Sign in again as a new device.",
      });
    }
    throw e;
  }
  // The devices already there are not news to this one (they are told of
  // it); if the list cannot be had now, the first sync's check tells of them.
  try {
    d.know_devices(JSON.stringify(await call(() => api.GET("/api/v1/devices"))));
  } catch {
    // (as said)
  }
  await start();
}

/**
 * Opens the stored device with the PIN; a wrong PIN opens nothing. Offline,
 * it opens on this browser's copy within the policy's `max_offline_days`.
 */
export async function unlock(user: string, pin: string): Promise<void> {
  if (!(await lock(false))) {
    throw new Failed({ status: 409, code: "elsewhere", message: "Wardline is open in another tab of this browser." });
  }
  const record = await stored();
  // One browser profile, one person (shared workstations are their own
  // issue): someone else's store is never opened, nor overwritten.
  if (record.user !== user) {
    throw new Failed({
      status: 409,
      code: "conflict",
      message: "This browser profile holds another person's Wardline messages. Sign out and use your own browser profile.",
    });
  }
  const d = withPin(record, pin);
  sessionSealed = record.session ?? null;
  device = d;
  await startOrOffline();
}

/** This device's record, in a format this worker reads. */
async function stored(): Promise<store.DeviceRecord> {
  await loadWasm();
  const record = await store.load(deviceId);
  if (!record) throw new Failed({ status: 404, code: "not_found", message: "This browser has no Wardline store yet." });
  if (record.format !== STORE_FORMAT) {
    throw new Failed({ status: 409, code: "conflict", message: "This store was written by a newer Wardline. Reload the page." });
  }
  if (record.shared) shared = true;
  return record;
}

/** Opens a record with the PIN (a wrong one opens nothing); what expired meanwhile goes first. */
function withPin(record: store.DeviceRecord, pin: string): Device {
  let d: Device;
  try {
    d = Device.open(record.sealed, deviceId, pin);
  } catch {
    throw new Failed({ status: 403, code: "wrong_pin", message: "That PIN does not open this browser's store." });
  }
  d.expire(now());
  return d;
}

// ------------------------------------------------------------ saved session

/** What a reload resumes with: the session token and who it signs in. */
export interface SavedSession {
  token: string;
  session: S["CurrentSession"];
}

/** Whether this browser keeps a session to resume with the PIN. */
export async function hasSavedSession(id: string): Promise<boolean> {
  deviceId = id;
  return Boolean((await store.load(id).catch(() => undefined))?.session);
}

/**
 * Seals the signed-in session into the open device's record, so that a
 * reload asks for the PIN only (ARCHITECTURE.md, "Browsers hold no ambient
 * credential": at rest the token is as unreadable as the messages).
 */
export function rememberSession(saved: SavedSession) {
  return exclusive(async () => {
    sessionSealed = open().seal_session(JSON.stringify(saved));
    await persist();
  });
}

/** Signed out, or the session ended: a reload asks to sign in again. */
export async function forgetSession() {
  sessionSealed = null;
  if (deviceId) await store.forgetSession(deviceId).catch(() => {});
}

/**
 * Opens the store with the PIN and returns the session saved in it. The
 * device stays open, not started, until `resumed` (the session still
 * holds) or `close`; when another tab has it, only the session is read.
 */
export async function openSaved(id: string, pin: string): Promise<SavedSession> {
  deviceId = id;
  const record = await stored();
  if (!record.session) throw new Failed({ status: 401, code: "unauthenticated", message: "Sign in again." });
  const d = withPin(record, pin);
  let saved: SavedSession;
  try {
    saved = JSON.parse(d.open_session(record.session)) as SavedSession;
  } catch (e) {
    d.free();
    await forgetSession();
    throw new Failed({ status: 401, code: "unauthenticated", message: e instanceof Error ? e.message : "Sign in again." });
  }
  if (await lock(false)) {
    pending?.free();
    pending = d;
    sessionSealed = record.session;
  } else d.free();
  return saved;
}

/** The saved session holds (or the server is out of reach): the device opened by `openSaved` starts. */
export async function resumed(): Promise<void> {
  if (!pending) return;
  device = pending;
  pending = null;
  await startOrOffline();
}

// ------------------------------------------------------------ sync

async function start() {
  reconnectDelay = 1000;
  await exclusive(() => sync());
  reached(true);
  changed();
  connect();
}

/**
 * Starts; when the server cannot be reached, opens on this browser's copy
 * (history to read, messages queued in the outbox) and keeps trying — but
 * not past the policy's `max_offline_days` since the server last answered.
 */
async function startOrOffline() {
  // Disappearing messages go from this browser when their time comes, not
  // only at the next catch-up.
  clearInterval(expiryTimer);
  expiryTimer = setInterval(() => {
    exclusive(async () => {
      if (device && device.expire(now()) > 0) {
        await persist();
        changed();
      }
    }).catch(() => {});
  }, EXPIRY_CHECK_MS);
  try {
    await start();
  } catch (e) {
    if (!(e instanceof Failed) || e.failure.code !== "unavailable") {
      close();
      throw e;
    }
    const d = open();
    const days = d.offline_too_long(now());
    if (days !== undefined) {
      const max = (JSON.parse(d.policy() ?? "{}") as Partial<S["DevicePolicy"]>).max_offline_days;
      close();
      throw new Failed({
        status: 423,
        code: "offline_too_long",
        message:
          `This browser has not reached Wardline for ${days} days; your organisation allows ${max ?? days} days offline. ` +
          "Connect to the network and unlock again.",
      });
    }
    reached(false);
    changed();
    reconnectLater();
  }
}

/** Applies entries, stores the result, then acknowledges (never the other way round). */
async function apply(entries: S["InboxEntry"][]): Promise<CoreEvent[]> {
  if (entries.length === 0) return [];
  const d = open();
  const events = JSON.parse(d.apply(JSON.stringify(entries))) as CoreEvent[];
  await persist();
  await call(() => api.POST("/api/v1/sync/ack", { body: { up_to: entries[entries.length - 1].seq } }));
  return events;
}

/** Catches up with the inbox over HTTP. */
async function pull(): Promise<CoreEvent[]> {
  const events: CoreEvent[] = [];
  for (;;) {
    const page = await call(() =>
      api.GET("/api/v1/sync", { params: { query: { after: open().cursor(), limit: 200 } } }),
    );
    // Absent only from a server older than server_time (0: nothing learnt).
    open().saw_server_time(page.server_time ?? 0);
    events.push(...(await apply(page.entries)));
    if (!page.more) break;
  }
  if (open().expire(now()) > 0) await persist();
  return events;
}

/** Catch up, refresh conversations and names, bring groups in line, send the outbox. */
async function sync() {
  const events = await pull();
  await refresh();
  await after(events);
}

async function refresh() {
  const d = open();
  for (const c of (await call(() => api.GET("/api/v1/conversations"))).conversations) {
    keepConversation(c);
  }
  const users = await call(() => api.GET("/api/v1/users"));
  directory = Object.fromEntries(users.users.map((u) => [u.id, u.display_name]));
  d.set_directory(JSON.stringify(directory));
  d.set_policy(JSON.stringify(await policy()));
  await persist();
}

/** Who else wants to hear what applying entries did (clinical.ts: alerts, recalls). */
const listeners: ((events: CoreEvent[]) => void)[] = [];
export function onEvents(f: (events: CoreEvent[]) => void) {
  listeners.push(f);
}

async function after(events: CoreEvent[]) {
  if (events.length) for (const f of listeners) f(events);
  await reconcileTouched(events);
  await flush();
  await checkDevices();
  // Read receipts that could not be sent while offline.
  reportRead().catch(() => {});
}

async function reconcileTouched(events: CoreEvent[]) {
  const touched = new Set<string>();
  for (const e of events) {
    if (e.kind === "membership_changed" || e.kind === "joined") touched.add(e.conversation);
  }
  for (const c of touched) await reconcile(c);
}

/** Keeps this device's key packages stocked (others add it to groups with them). */
async function checkDevices() {
  const d = open();
  const mine = await call(() => api.GET("/api/v1/devices"));
  const news = JSON.parse(d.check_devices(JSON.stringify(mine))) as CoreEvent[];
  if (news.length) await persist();
  // Told once (the core knows it from now on): a device the person did not
  // add is theirs to notice.
  for (const n of news) if (n.kind === "new_device") post({ event: "new_device", name: n.name });
  if (d.key_packages_available(JSON.stringify(mine)) < KEY_PACKAGE_LOW_WATER) {
    const body = JSON.parse(d.more_key_packages()) as S["UploadKeyPackagesRequest"];
    await persist();
    await call(() => api.POST("/api/v1/devices/key-packages", { body }));
  }
}

/**
 * Submits a commit the core made. If another device won the epoch, the
 * commit is dropped and the inbox pulled (the caller's loop plans again).
 */
async function commit(conv: string, body: S["SubmitMessageRequest"]) {
  const d = open();
  try {
    const r = await call(() => api.POST("/api/v1/conversations/{id}/messages", { params: { path: { id: conv } }, body }));
    d.commit_accepted(conv, r.created_at);
    await persist();
  } catch (e) {
    d.commit_refused(conv);
    if (!(e instanceof Failed) || e.failure.code !== "stale_epoch") throw e;
    await reconcileTouched(await pull());
  }
}

/** Makes the conversation's MLS group match the server's membership. */
async function reconcile(conv: string) {
  const d = open();
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    let c: S["Conversation"];
    try {
      c = await call(() => api.GET("/api/v1/conversations/{id}", { params: { path: { id: conv } } }));
    } catch (e) {
      if (e instanceof Failed && e.failure.code === "not_found") return;
      throw e;
    }
    keepConversation(c);
    const plan = JSON.parse(d.plan(JSON.stringify(c))) as { add: string[]; remove: string[] };
    if (plan.remove.length) {
      await commit(conv, JSON.parse(d.commit_remove(conv, JSON.stringify(plan.remove))));
      continue;
    }
    if (plan.add.length) {
      const claimed = await call(() =>
        api.POST("/api/v1/conversations/{id}/key-packages/claim", {
          params: { path: { id: conv } },
          body: { device_ids: plan.add },
        }),
      );
      if (claimed.key_packages.length === 0) break;
      await commit(conv, JSON.parse(d.commit_add(conv, JSON.stringify(claimed))));
      continue;
    }
    break;
  }
  await persist();
}

/** Messages the server refused for good since the device was opened, and why. */
const refused: { id: string; message: string }[] = [];

/**
 * Sends the outbox: each conversation's messages in order, a conversation
 * that cannot take messages yet skipped without holding the others back.
 * Offline, messages stay (sealed) in the outbox for the next sync.
 */
async function flush() {
  const d = open();
  const blocked: string[] = [];
  let attempts = 0;
  for (;;) {
    const i = d.next_to_send(JSON.stringify(blocked));
    if (i === undefined) break;
    const conv = d.outbox_conversation(i)!;
    if (attempts >= MAX_ATTEMPTS) {
      blocked.push(conv);
      attempts = 0;
      continue;
    }
    attempts++;
    if (!d.has_group(conv)) {
      // Not joined yet (its Welcome has not come) or removed.
      if (d.is_closed(conv)) {
        d.drop_at(i);
        await persist();
      } else blocked.push(conv);
      attempts = 0;
      continue;
    }
    const body = JSON.parse(d.encrypt_at(i)) as S["SubmitMessageRequest"];
    // The ratchet moved: keep that before the bytes leave.
    await persist();
    try {
      const r = await call(() => api.POST("/api/v1/conversations/{id}/messages", { params: { path: { id: conv } }, body }));
      d.sent_at(i, r.created_at, r.expires_at ?? undefined);
      persistSoon();
      attempts = 0;
    } catch (e) {
      const code = e instanceof Failed ? e.failure.code : "unavailable";
      if (code === "stale_epoch") {
        d.reencrypt_at(i);
        await persist();
        await reconcileTouched(await pull());
      } else if (code === "membership_pending") {
        d.reencrypt_at(i);
        await persist();
        await reconcile(conv);
      } else if (code === "not_found") {
        d.drop_at(i);
        await persist();
        attempts = 0;
      } else if (["validation", "payload_too_large", "bad_request", "forbidden"].includes(code)) {
        const id = d.drop_at(i);
        await persist();
        if (id) refused.push({ id, message: (e as Failed).failure.message });
        attempts = 0;
      } else throw e;
    }
  }
}

/** The sync WebSocket, authenticated by a one-time ticket (a browser cannot send Authorization). */
async function connect() {
  if (!device || socket) return;
  let ticket: string;
  try {
    ticket = (await call(() => api.POST("/api/v1/sync/ticket"))).ticket;
  } catch {
    return reconnectLater();
  }
  if (!device) return;
  const origin = self.location.origin.replace(/^http/, "ws");
  const ws = new WebSocket(
    `${origin}/api/v1/sync/ws?after=${device.cursor()}&ticket=${encodeURIComponent(ticket)}`,
  );
  socket = ws;
  /** Entries since the last `idle` frame. */
  let batch: S["InboxEntry"][] = [];
  /** Whole batches not applied yet. */
  let ready: S["InboxEntry"][] = [];
  let draining = false;
  /**
   * Applies what is ready, stores it, acknowledges it — then again with
   * whatever arrived meanwhile, so a burst (a backlog after a weekend away,
   * a busy ward) costs one store write per round, not one per message:
   * each write seals the whole state, which grows with the history.
   */
  const drain = async () => {
    while (ready.length && device) {
      const entries = ready;
      ready = [];
      const events = JSON.parse(device.apply(JSON.stringify(entries))) as CoreEvent[];
      // Shown at once; acknowledged only once stored (a tab that dies in
      // between gets the entries again: they are not acknowledged).
      changed();
      await persist();
      ws.send(JSON.stringify({ type: "ack", up_to: device.cursor() }));
      await after(events);
      changed();
    }
  };
  ws.onopen = () => {
    reconnectDelay = 1000;
  };
  ws.onmessage = (m) => {
    let frame: { type: string } & Record<string, unknown>;
    try {
      frame = JSON.parse(String(m.data));
    } catch {
      return;
    }
    if (frame.type === "entry") batch.push(frame as unknown as S["InboxEntry"]);
    // A patient replied (content-free: who, not what).
    else if (frame.type === "notice") post({ event: "patient_notice", patient: String(frame.patient_id) });
    else if (frame.type === "idle") {
      // The server's clock, which disappearing messages go by (a field, not
      // a step: set at once; the expiry check stores what it deletes).
      if (typeof frame.server_time === "number") device?.saw_server_time(frame.server_time);
      if (!batch.length) return;
      ready.push(...batch);
      batch = [];
      if (draining) return;
      draining = true;
      exclusive(drain)
        .catch(() => ws.close())
        .finally(() => {
          draining = false;
        });
    }
  };
  ws.onclose = () => {
    if (socket === ws) socket = null;
    reconnectLater();
  };
}

// The browser says the network is back: try now, not at the next back-off step.
self.addEventListener("online", () => {
  if (!device || online) return;
  reconnectDelay = 100;
  reconnectLater();
});

function reconnectLater() {
  if (!device) return;
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(() => {
    if (!device) return;
    // Catch up over HTTP first (and send what waited), then listen again.
    exclusive(() => sync())
      .then(() => {
        reached(true);
        changed();
      })
      .catch((e) => {
        if (e instanceof Failed && e.failure.code === "unavailable") reached(false);
      })
      .finally(() => connect());
  }, reconnectDelay);
  reconnectDelay = Math.min(reconnectDelay * 2, 30_000);
}

// ------------------------------------------------------------ what the page asks

/** Conversations whose read receipts the policy makes mandatory (as the server last said). */
const receiptsMandatory = new Set<string>();
/** Each conversation's message lifespan (seconds; null: messages stay), as the server said. */
const lifespans = new Map<string, number | null>();

/** Direct conversations (as the server last said). */
const directs = new Set<string>();

/**
 * Keeps the server's view of a conversation: the core's part (title,
 * members, lifecycle) and what the page needs that the core does not keep.
 */
function keepConversation(c: S["Conversation"]) {
  open().update_conversation(JSON.stringify(c));
  lifespans.set(c.id, c.lifecycle.message_ttl_secs ?? null);
  if (c.read_receipts_mandatory) receiptsMandatory.add(c.id);
  else receiptsMandatory.delete(c.id);
  if (c.kind === "direct") directs.add(c.id);
  else directs.delete(c.id);
}

/** A message as the page may see it: attachment keys stay in the worker. */
export function forPage(m: Message): Message {
  const attachments = m.content.attachments?.map(({ id, kind, name, mime, size }): Attachment => ({
    id,
    kind,
    name,
    mime,
    size,
  }));
  return attachments ? { ...m, content: { ...m.content, attachments } } : m;
}

export function conversations(): ConversationSummary[] {
  const list = JSON.parse(open().conversations()) as Omit<ConversationSummary, "receipts_mandatory" | "kind">[];
  return list.map((c) => ({
    ...c,
    last: c.last && forPage(c.last),
    kind: directs.has(c.id) ? "direct" : "group",
    receipts_mandatory: receiptsMandatory.has(c.id),
    lifespan: lifespans.get(c.id) ?? null,
  }));
}

export function messages(conv: string, limit: number): MessageView {
  const d = open();
  d.shown(conv);
  // The unread mark is stored with the next change, or soon: not a disk
  // write on every new message shown (that write would queue ahead of the
  // ones that acknowledge).
  persistSoon();
  const view = JSON.parse(d.messages(conv, Math.max(1, Math.floor(limit)))) as MessageView;
  return { ...view, messages: view.messages.map(forPage) };
}

/** Colleagues' display names by user id, as last fetched. */
export function names(): Record<string, string> {
  return directory;
}

export function colleagues(): { id: string; name: string }[] {
  const me = open().user();
  return Object.entries(directory)
    .filter(([id]) => id !== me)
    .map(([id, name]) => ({ id, name }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

// ------------------------------------------------------------ attachments

/**
 * A photo drawn again as it looks (turned upright by its EXIF orientation)
 * and encoded afresh: EXIF, GPS and every other metadata block stay behind.
 */
async function withoutMetadata(photo: Blob): Promise<Blob> {
  const bitmap = await createImageBitmap(photo, { imageOrientation: "from-image" });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  canvas.getContext("2d")!.drawImage(bitmap, 0, 0);
  bitmap.close();
  return canvas.convertToBlob({ type: photo.type === "image/png" ? "image/png" : "image/jpeg", quality: 0.92 });
}

/** Photos whose metadata is stripped before encryption (what canvases encode). */
const PHOTOS = ["image/jpeg", "image/png", "image/webp"];

/**
 * Encrypts one file under a fresh key and uploads the ciphertext; the key
 * goes only into the message. Refused before upload when the device policy
 * does not allow its type (the server refuses sizes over its limit).
 */
async function upload(conv: string, file: File) {
  const declared = file.type || "application/octet-stream";
  if (!open().allows_attachment(declared)) {
    throw new Failed({
      status: 422,
      code: "validation",
      message: `Your organisation does not allow ${declared} attachments (${file.name}).`,
    });
  }
  let blob: Blob = file;
  let kind: Attachment["kind"] = declared.startsWith("audio/") ? "voice" : "file";
  if (PHOTOS.includes(declared)) {
    blob = await withoutMetadata(file);
    kind = "photo";
  }
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const name = file.name || "attachment";
  try {
    return { ...(await sealAndUpload(conv, bytes)), kind, name, mime: blob.type || declared, size: bytes.length };
  } catch (e) {
    // The server's limit (`max_attachment_bytes`), said with the file's name.
    if (e instanceof Failed && e.failure.code === "payload_too_large") {
      throw new Failed({ ...e.failure, message: `Too large to send (${name}): ${e.failure.message}.` });
    }
    throw e;
  }
}

/** Encrypts bytes under a fresh key and uploads the ciphertext to `conv`: the id and the key. */
async function sealAndUpload(conv: string, bytes: Uint8Array): Promise<{ id: string; key: string }> {
  const sealed = seal_attachment(bytes);
  try {
    const ciphertext = sealed.ciphertext();
    const up = await call(() =>
      api.POST("/api/v1/conversations/{id}/attachments", {
        params: { path: { id: conv } },
        // The document calls the body an array of numbers; it is the bytes.
        body: ciphertext as unknown as number[],
        bodySerializer: (b: unknown) => b as BodyInit,
        headers: { "Content-Type": "application/octet-stream" },
      }),
    );
    return { id: up.attachment_id, key: sealed.key() };
  } finally {
    sealed.free();
  }
}

/** Downloads and opens one attachment of a message (the key is the message's). */
export async function attachment(conv: string, message: string, id: string) {
  const found = open().attachment_ref(conv, message, id);
  const ref = found === undefined ? undefined : (JSON.parse(found) as Attachment & { key: string });
  if (!ref) throw new Failed({ status: 404, code: "not_found", message: "That attachment is not here any more." });
  const sealed = await call(() =>
    api.GET("/api/v1/conversations/{id}/attachments/{attachment_id}", {
      params: { path: { id: conv, attachment_id: id } },
      parseAs: "arrayBuffer",
    }),
  );
  let data: Uint8Array;
  try {
    data = open_attachment(new Uint8Array(sealed as unknown as ArrayBuffer), ref.key);
  } catch {
    throw new Failed({ status: 422, code: "validation", message: `${ref.name} does not open: it was altered.` });
  }
  return { name: ref.name, mime: ref.mime, data: data.buffer as ArrayBuffer };
}

/** Queues a message and sends the outbox; offline, it stays queued (sealed). */
export async function send(
  conv: string,
  text: string,
  priority: string,
  replyTo: string | null,
  files: File[] = [],
  ttlSecs: number | null = null,
) {
  // Attachments go up first (they need the server); the message that holds
  // their keys then takes its place in the outbox.
  const refs: Awaited<ReturnType<typeof upload>>[] = [];
  if (files.length) {
    // The policy as the server says it now (an administrator may have just
    // narrowed the types); the rule is the core's.
    open().set_policy(JSON.stringify(await policy()));
    for (const f of files) refs.push(await upload(conv, f));
  }
  return queueAndSend((d) => d.queue_text(conv, text, priority, replyTo ?? "", JSON.stringify(refs), ttlSecs ?? undefined));
}

/**
 * Puts a message in the outbox (`queue` returns its id) and sends the
 * outbox; offline, it stays queued. Throws if the server refused it for good.
 */
function queueAndSend(queue: (d: Device) => string): Promise<string> {
  return exclusive(async () => {
    const id = queue(open());
    // Stored before it leaves, by the encryption's own write (one disk
    // write on the way, not two); if it cannot go yet, after `flush`.
    unsaved = true;
    changed();
    try {
      await flush();
    } catch (e) {
      if (!(e instanceof Failed) || e.failure.code !== "unavailable") throw e;
      // Out of reach (the socket may not have noticed yet): try again
      // with the reconnect's back-off.
      reached(false);
      reconnectLater();
    } finally {
      if (unsaved && device) await persist();
    }
    changed();
    const r = refused.find((x) => x.id === id);
    if (r) throw new Failed({ status: 422, code: "refused", message: r.message });
    return id;
  });
}

/**
 * Forwards a message into another conversation, where the device policy's
 * `allow_forwarding` lets it (the core refuses otherwise). Its attachments
 * are downloaded, opened and uploaded again there under fresh keys: each
 * conversation's attachments are its own on the server.
 */
export async function forward(from: string, message: string, to: string): Promise<string> {
  const d = open();
  // The policy as the server says it now (forwarding may have just been
  // turned off); offline, as last kept.
  const p = await policy().catch(() => null);
  if (p) d.set_policy(JSON.stringify(p));
  let originals: (Attachment & { key: string })[];
  try {
    originals = JSON.parse(open().forwarding(from, message));
  } catch (e) {
    // The core's refusal, in the person's terms (policy, or the message is gone).
    throw new Failed({ status: 403, code: "forbidden", message: e instanceof Error ? e.message : String(e) });
  }
  const again: (Attachment & { key: string })[] = [];
  for (const a of originals) {
    if (!open().allows_attachment(a.mime)) {
      throw new Failed({ status: 422, code: "validation", message: `Your organisation does not allow ${a.mime} attachments (${a.name}).` });
    }
    const { data } = await attachment(from, message, a.id);
    again.push({ ...a, ...(await sealAndUpload(to, new Uint8Array(data))) });
  }
  return queueAndSend((dev) => dev.queue_forward(from, message, to, JSON.stringify(again)));
}

/** Starts a conversation: the server records it, this device makes the group and adds everyone. */
export function startConversation(n: NewConversation) {
  return adopt(() => {
    open(); // unlocked, or nothing is created on the server
    return call(() =>
      api.POST("/api/v1/conversations", {
        body: {
          // The server keeps direct conversations to two people, untitled, without a patient.
          kind: n.members.length === 1 && !n.title && !n.patientRef ? "direct" : "group",
          title: n.title || undefined,
          members: n.members,
          patient_ref: n.patientRef || undefined,
        },
      }),
    );
  }).then((c) => c.id);
}

/**
 * Takes a conversation the server just made or changed for this person (a
 * new one, a page to a role): keeps it, and brings its MLS group in line
 * (this device makes the group, or adds the newcomers' devices).
 */
export function adopt(made: () => Promise<S["Conversation"]>): Promise<S["Conversation"]> {
  return exclusive(async () => {
    const c = await made();
    keepConversation(c);
    await persist();
    await reconcile(c.id);
    changed();
    return c;
  });
}

/**
 * Sets how long messages live in a conversation (seconds; null: as the
 * organisation's policy says). Every member's device deletes its copies
 * when the time comes, as the server does.
 */
export function setLifespan(conv: string, ttlSecs: number | null) {
  return adopt(async () => {
    const c = await call(() => api.GET("/api/v1/conversations/{id}", { params: { path: { id: conv } } }));
    return call(() =>
      api.PUT("/api/v1/conversations/{id}/lifecycle", {
        params: { path: { id: conv } },
        body: { retention: c.lifecycle_own?.retention ?? null, message_ttl_secs: ttlSecs },
      }),
    );
  }).then((c) => ({ lifespan: c.lifecycle.message_ttl_secs ?? null }));
}

/** Makes a change to the core and stores it before answering (a patient message's key). */
export function keep(change: (d: Device) => void): Promise<void> {
  return exclusive(async () => {
    change(open());
    await persist();
  });
}

/** Catches up with the inbox now (after a change made on the server, such as a recall). */
export function catchUp(): Promise<void> {
  return exclusive(async () => {
    await after(await pull());
    changed();
  });
}

// ------------------------------------------------------------ receipts

/** Others' messages shown to the person and not reported read yet, by conversation. */
const toMarkRead = new Map<string, Set<string>>();
/** Reported read since the device was opened (the page repeats what is on screen). */
const reportedRead = new Set<string>();
let readTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * The page showed these messages from others to the person (on screen, the
 * tab in front): they are reported read, a moment later and together. A
 * read receipt means "seen", so nothing else marks a message read.
 */
export function markShown(conv: string, ids: string[]) {
  open();
  const pending = toMarkRead.get(conv) ?? new Set<string>();
  for (const id of ids) if (!reportedRead.has(id)) pending.add(id);
  if (pending.size === 0) return;
  toMarkRead.set(conv, pending);
  clearTimeout(readTimer);
  readTimer = setTimeout(() => reportRead().catch(() => {}), 300);
}

/** Sends the pending read marks; offline they wait for the next sync. */
async function reportRead() {
  for (const [conv, pending] of [...toMarkRead]) {
    const ids = [...pending];
    const most = max_read_ids();
    for (let i = 0; i < ids.length; i += most) {
      const chunk = ids.slice(i, i + most);
      try {
        await call(() =>
          api.POST("/api/v1/conversations/{id}/read", { params: { path: { id: conv } }, body: { message_ids: chunk } }),
        );
      } catch (e) {
        // Unreachable: try again later. Refused (the message is gone, or
        // this device was removed): there is nothing to mark any more.
        if (!(e instanceof Failed) || e.failure.code === "unavailable") throw e;
      }
      for (const id of chunk) {
        reportedRead.add(id);
        pending.delete(id);
      }
    }
    if (pending.size === 0) toMarkRead.delete(conv);
  }
}

/** Own messages whose receipts are fetched again (the latest unsettled ones). */
const RECEIPTS_REFRESHED = 3;
/** How often one message's receipts are fetched while it is unsettled. */
const RECEIPTS_EVERY_MS = 4000;
const receiptCache = new Map<string, { at: number; r: S["MessageReceipts"] }>();

/** Every member's devices have shown it: nothing more will change. */
function settled(r: S["MessageReceipts"]): boolean {
  return (r.not_received ?? []).length === 0 && r.receipts.every((x) => x.read_at != null);
}

/**
 * Receipts of my messages `ids` (in the order shown, the latest last): the
 * latest few that are not settled are fetched again, at most every few
 * seconds; the rest come from what was fetched before.
 */
export async function receipts(conv: string, ids: string[]): Promise<Record<string, ReceiptView>> {
  open();
  const due = ids
    .filter((id) => {
      const c = receiptCache.get(id);
      return !c || (!settled(c.r) && Date.now() - c.at >= RECEIPTS_EVERY_MS);
    })
    .slice(-RECEIPTS_REFRESHED);
  for (const id of due) {
    try {
      const r = await call(() =>
        api.GET("/api/v1/conversations/{id}/messages/{message_id}/receipts", {
          params: { path: { id: conv, message_id: id } },
        }),
      );
      receiptCache.set(id, { at: Date.now(), r });
    } catch {
      // Offline, or the message is gone: show what was known.
      break;
    }
  }
  const name = (u: string) => directory[u] ?? "A colleague";
  const views: Record<string, ReceiptView> = {};
  for (const id of ids) {
    const c = receiptCache.get(id);
    if (!c) continue;
    views[id] = {
      devices: c.r.receipts.map((x) => ({
        user: x.user_id,
        name: name(x.user_id),
        delivered_at: x.delivered_at ?? null,
        read_at: x.read_at ?? null,
      })),
      not_received: (c.r.not_received ?? []).map((x) => ({ user: x.user_id, name: name(x.user_id), reason: x.reason })),
      // Settled receipts cannot change any more: true as of now.
      as_of: settled(c.r) ? now() : Math.floor(c.at / 1000),
    };
  }
  return views;
}

// ------------------------------------------------------------ members

/**
 * Applies a membership change the server made (the conversation it
 * answers), then brings the MLS group in line: colleagues' devices added,
 * or removed (no message is accepted until that commit).
 */
function changeMembers(conv: string, change: () => Promise<S["Conversation"]>) {
  return exclusive(async () => {
    keepConversation(await change());
    await reconcile(conv);
    changed();
    return null;
  });
}

/** Adds a colleague to a group. */
export function addMember(conv: string, user: string) {
  return changeMembers(conv, () =>
    call(() => api.POST("/api/v1/conversations/{id}/members", { params: { path: { id: conv } }, body: { user_id: user } })),
  );
}

/** Takes a colleague out of a group: the server stops delivering to them at once. */
export function removeMember(conv: string, user: string) {
  return changeMembers(conv, () =>
    call(() =>
      api.DELETE("/api/v1/conversations/{id}/members/{user_id}", { params: { path: { id: conv, user_id: user } } }),
    ),
  );
}

/**
 * Leaves: the server takes this person out; this device forgets the group's
 * keys and what was still queued there, and keeps the history (another
 * member's device commits the removal).
 */
export function leave(conv: string) {
  return exclusive(async () => {
    const d = open();
    await call(() =>
      api.DELETE("/api/v1/conversations/{id}/members/{user_id}", {
        params: { path: { id: conv, user_id: d.user() } },
      }),
    );
    d.left(conv);
    await persist();
    changed();
    return null;
  });
}

/** The server said this device was wiped: erase its store, confirm, forget it. */
export async function obeyWipe() {
  close();
  await store.eraseAll();
  await api.POST("/api/v1/devices/wipe-confirmation", { body: { erased: true } }).catch(() => {});
}
