// The message API between the page and the session worker. The worker alone
// holds the session token (ARCHITECTURE.md, "Browsers hold no ambient
// credential"): nothing that crosses this boundary carries it.
import type { components } from "../api/schema";

type S = components["schemas"];
export type CurrentSession = S["CurrentSession"];
export type TotpEnrolment = S["TotpEnrolment"];
export type LoginStep = S["LoginStep"];

/** What the page asks the worker to do. */
export type Request =
  /** `shared`: a shared computer — nothing of this person stays in the browser after sign-out. */
  | { op: "login"; org: string; email: string; password: string; shared: boolean }
  | { op: "verifyMfa"; code: string }
  | { op: "enrolTotp" }
  | { op: "confirmTotp"; code: string }
  | { op: "session" }
  /** A new tab (not a reload): erase what a shared computer's last user left by closing the tab. */
  | { op: "leftBehind" }
  | { op: "resume"; pin: string }
  /** `remove`: also take this browser out of the person's devices and erase its store (always, on a shared computer). */
  | { op: "logout"; remove: boolean }
  | { op: "deviceState" }
  | { op: "takeOver" }
  | { op: "createDevice"; pin: string; name: string }
  | { op: "unlock"; pin: string }
  | { op: "lock" }
  | { op: "conversations" }
  /** The latest `limit` messages (a long thread comes a page at a time). */
  | { op: "messages"; conversation: string; limit: number }
  | { op: "colleagues" }
  | {
      op: "send";
      conversation: string;
      text: string;
      priority: Priority;
      replyTo: string | null;
      files: File[];
      /** A disappearing message: deleted everywhere this many seconds after it is sent. */
      ttlSecs: number | null;
    }
  | { op: "setLifespan"; conversation: string; ttlSecs: number | null }
  | { op: "forward"; from: string; message: string; to: string }
  | { op: "attachment"; conversation: string; message: string; attachment: string }
  | { op: "startConversation"; conversation: NewConversation }
  | { op: "addMember"; conversation: string; user: string }
  | { op: "removeMember"; conversation: string; user: string }
  | { op: "leave"; conversation: string }
  | { op: "markShown"; conversation: string; messages: string[] }
  | { op: "receipts"; conversation: string; messages: string[] }
  /** Urgent and STAT messages that still need someone (clinical.ts). */
  | { op: "awaiting" }
  | { op: "escalations"; conversation: string; messages: string[] }
  | { op: "acknowledge"; conversation: string; message: string }
  | { op: "roles" }
  | { op: "page"; role: string; patientRef: string; text: string; priority: Priority }
  | { op: "presence" }
  | { op: "setPresence"; status: PresenceStatus; until: number | null }
  | { op: "findColleagues"; query: string }
  | { op: "recall"; conversation: string; message: string }
  | { op: "search"; query: string }
  | { op: "openPatient"; patientRef: string; reason: string | null }
  | { op: "breakGlass" }
  | { op: "locate"; message: string }
  | { op: "patients" }
  | { op: "patientThread"; patient: string }
  | { op: "sendSecure"; patient: string; text: string; teamReadable: boolean }
  | { op: "templates" }
  | { op: "sendTemplate"; patient: string; template: string; params: Record<string, string> }
  /** Web Push for this device: the server's key and whether it is subscribed (worker/push.ts). */
  | { op: "pushSettings" }
  | { op: "pushSubscribe"; subscription: S["PushSubscriptionRequest"] }
  | { op: "pushUnsubscribe" }
  /**
   * An administration or compliance console call (console/client.ts): the
   * worker adds the token; only the console's API paths are allowed.
   */
  | { op: "console"; method: string; path: string; body: ArrayBuffer | null; contentType: string | null };

export type PresenceStatus = S["PresenceStatus"];
export type Presence = S["Presence"];
export type DirectoryEntry = S["DirectoryEntry"];
export type EscalationAction = S["EscalationAction"];
export type ResolvedVia = S["ResolvedVia"];

/** Where an urgent or STAT message's escalation stands (the server's `Escalation`, with names). */
export interface EscalationView {
  message: string;
  conversation: string;
  priority: Priority;
  /** Of the escalation this message belongs to (the one it joined, if merged). */
  state: S["EscalationState"];
  /** It joined an open escalation in the same conversation. */
  merged: boolean;
  /** Sent to a clinical role: its name. */
  role: string | null;
  sender: string;
  /** Who the role resolved to, and why (on call, backup, holder, fallback role). */
  resolved: { name: string; via: ResolvedVia } | null;
  notified: string[];
  events: { at: number; action: EscalationAction; users: string[]; sms: boolean }[];
  /** The next step and when it runs (Unix seconds, server time); open only. */
  next: { at: number; action: EscalationAction } | null;
  acknowledged: { by: string; at: number } | null;
  createdAt: number;
}

/** An urgent message that needs someone: another's to acknowledge, or one's own nobody answered. */
export interface AwaitingView {
  conversation: string;
  message: Message;
  escalation: EscalationView;
}

export interface PageResult {
  conversation: string;
  role: string;
  /** Who it reached. */
  to: string;
  via: ResolvedVia;
  nobodyOnCall: boolean;
  /** The server's one line for the sender ("On call: Dr A (backup; Dr B is in a procedure)"). */
  notice: string;
}

/** What a recall found: who had read the message before it went (names, Unix seconds). */
export interface RecallView {
  recalledAt: number;
  readBefore: { name: string; at: number }[];
  /** Delivered to these people's devices, not read. */
  deliveredUnread: string[];
  serverCopy: S["ServerCopy"];
}

/** A patient's threads as opened: how this person came in (care team, break-glass…). */
export interface PatientView {
  conversations: { id: string; via: S["AccessVia"] }[];
  /** Break-glass grants this opening made: until when (Unix seconds). */
  grants: { conversation: string; until: number }[];
}

/** The practice's patient threads and patients, and who replied since staff last looked. */
export interface PatientsView {
  threads: S["PatientThreadSummary"][];
  patients: { id: string; name: string; mrn: string | null }[];
  /** Patients whose reply this person was told of and has not opened yet. */
  replied: string[];
}

/** One patient and their thread, this browser's sealed messages opened. */
export interface PatientThreadView {
  patient: S["Patient"];
  messages: S["PatientMessage"][];
}

/** Break-glass access still running, with the reason given. */
export interface GrantView {
  conversation: string;
  until: number;
  reason: string;
}

export interface SearchView {
  /** Newest first; `after`: messages after it in its thread. */
  results: { conversation: string; message: Message; after: number }[];
  /** How long the search took in the worker (ms). */
  tookMs: number;
}

export type Priority = "routine" | "urgent" | "stat";

/** Where this browser's device stands. */
export interface DeviceState {
  /**
   * `new`: no store yet (choose a PIN); `locked`: stored, PIN needed;
   * `open`: unlocked in this tab; `elsewhere`: another tab has it open.
   */
  step: "new" | "locked" | "open" | "elsewhere";
  /** The organisation's minimum PIN length (0: no PIN required). */
  minPin: number;
  /** The idle lock (`lock_after_idle_secs`), when known. */
  lockAfterIdleSecs: number | null;
  /**
   * Signed in as on a shared computer: sign-out and the idle limit remove
   * this browser from the person's devices and erase its store.
   */
  shared: boolean;
  /** Whether message text may be copied out of the app (`allow_copy`). */
  allowCopy: boolean;
  /** Whether messages may be forwarded to another conversation (`allow_forwarding`). */
  allowForwarding: boolean;
  /**
   * Open but the server cannot be reached: since when (the server's last
   * answer, Unix seconds; 0: unknown). Null when online.
   */
  offlineSince: number | null;
}

export interface NewConversation {
  members: string[];
  title: string;
  patientRef: string;
}

/** An attachment as the page sees it: what it is, never its key (the worker keeps that). */
export interface Attachment {
  id: string;
  kind: "file" | "photo" | "voice";
  name: string;
  mime: string;
  /** Bytes, before encryption. */
  size: number;
}

/** A decrypted message, as the core keeps it (LocalMessage) with its sender's name. */
export interface Message {
  id: string;
  sender_user: string;
  sender_device: string;
  content: {
    text: string;
    reply_to?: string;
    attachments?: Attachment[];
    shared_again?: string;
    /** Forwarded from another conversation: who wrote the original, and when (Unix seconds). */
    forwarded?: { sender_user: string; sent_at: number; patient_ref?: string };
  };
  priority: Priority;
  sent_at: number;
  mine: boolean;
  expires_at: number | null;
  recalled_at: number | null;
  sender_name: string | null;
}

export interface MessageView {
  messages: Message[];
  /** Messages before these, not sent to the page (ask with a larger limit). */
  earlier: number;
  /** Outbox messages not sent yet, in order. */
  unsent: { id: string; text: string; priority: Priority }[];
}

/**
 * Where one of my messages stands with each recipient (the server's
 * `MessageReceipts`, with names): per device, when it was stored there and
 * when it was shown to its owner (null: not yet, or the reader does not share
 * read receipts and the conversation does not make them mandatory).
 */
export interface ReceiptView {
  devices: { user: string; name: string; delivered_at: number | null; read_at: number | null }[];
  /** Members none of whose devices has it, and why. */
  not_received: { user: string; name: string; reason: "no_device" | "joined_later" }[];
  /** When the server said this (Unix seconds): older when it cannot be asked (offline, left). */
  as_of: number;
}

export interface ConversationSummary {
  id: string;
  /** Direct conversations stay between their two people: no one is added or removed. */
  kind: "direct" | "group";
  title: string | null;
  patient_ref: string | null;
  members: string[];
  closed: boolean;
  /** Read receipts are shown here whatever a member's preference. */
  receipts_mandatory: boolean;
  /** Messages here disappear this many seconds after they are sent (null: they stay). */
  lifespan: number | null;
  unread: number;
  unread_priority: Priority;
  last: Message | null;
  unsent: number;
  joined: boolean;
}

/** What applying inbox entries did (the core's `Event`, by `kind`). */
export type CoreEvent =
  | { kind: "message"; conversation: string; message: Message }
  | { kind: "joined" | "membership_changed" | "removed"; conversation: string }
  | { kind: "commit" | "rejected"; conversation: string }
  | { kind: "recalled"; conversation: string; message: string }
  | { kind: "alert"; conversation: string; alert: S["AlertNotice"] }
  | { kind: "notice" }
  | { kind: "new_device"; device: string; name: string };

/** The API's error, as `{ "error": { "code", "message" } }` said it. */
export interface ApiFailure {
  status: number;
  code: string;
  message: string;
}

/** Where sign-in stands after a step. */
export type SignInState =
  | { step: "signed_out" }
  /** This browser keeps a session, sealed in its store: the PIN resumes it. */
  | { step: "resume" }
  | { step: "mfa_required" }
  | { step: "mfa_enrolment_required"; session: CurrentSession }
  | { step: "password_change_required"; session: CurrentSession }
  | { step: "complete"; session: CurrentSession };

export type Reply<T> = { ok: true; value: T } | { ok: false; error: ApiFailure };

/** What each request answers. */
export interface Answers {
  login: SignInState;
  verifyMfa: SignInState;
  enrolTotp: TotpEnrolment;
  confirmTotp: { recovery_codes: string[]; state: SignInState };
  session: SignInState;
  /** Whether a shared computer's store was found left behind, and erased. */
  leftBehind: boolean;
  resume: SignInState;
  /** `removed`: this browser was taken out of the person's devices and erased (use a new device id). */
  logout: { state: SignInState; removed: boolean };
  deviceState: DeviceState;
  takeOver: DeviceState;
  createDevice: DeviceState;
  unlock: DeviceState;
  lock: DeviceState;
  conversations: ConversationSummary[];
  messages: MessageView;
  colleagues: { id: string; name: string }[];
  send: string;
  forward: string;
  attachment: { name: string; mime: string; data: ArrayBuffer };
  startConversation: string;
  addMember: null;
  removeMember: null;
  leave: null;
  markShown: null;
  receipts: Record<string, ReceiptView>;
  awaiting: AwaitingView[];
  escalations: Record<string, EscalationView>;
  acknowledge: EscalationView;
  roles: { id: string; name: string; department: string | null }[];
  page: PageResult;
  presence: Presence;
  setPresence: Presence;
  findColleagues: DirectoryEntry[];
  recall: RecallView;
  search: SearchView;
  openPatient: PatientView;
  setLifespan: { lifespan: number | null };
  breakGlass: GrantView[];
  locate: { conversation: string; after: number } | null;
  patients: PatientsView;
  patientThread: PatientThreadView;
  sendSecure: string;
  templates: S["Template"][];
  /** The SMS's status as queued (`queued`, `held` for quiet hours …). */
  sendTemplate: string;
  pushSettings: S["PushSettings"];
  pushSubscribe: S["PushSettings"];
  pushUnsubscribe: S["PushSettings"];
  console: { status: number; contentType: string | null; body: ArrayBuffer };
}

/** Page → worker. */
export interface Envelope {
  id: number;
  deviceId: string;
  request: Request;
}

/** Worker → page: an answer to envelope `id`, or news nobody asked for. */
export type Outgoing =
  | { id: number; reply: Reply<unknown> }
  | { event: "signed_out"; message: string }
  /** The device's data changed (a message came or went): ask again. */
  | { event: "changed" }
  /** Another tab took this device over; this one stopped. */
  | { event: "elsewhere" }
  /** A device was added to this account after this one (its name, as registered). */
  | { event: "new_device"; name: string }
  /** The server stopped (a time) or started (null) answering. */
  | { event: "connection"; offlineSince: number | null }
  /** A patient this person wrote to replied (which patient; never what). */
  | { event: "patient_notice"; patient: string }
  /** The device was wiped: its store is erased, the session ended. */
  | { event: "wiped"; message: string };
