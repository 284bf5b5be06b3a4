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
  | { op: "login"; org: string; email: string; password: string }
  | { op: "verifyMfa"; code: string }
  | { op: "enrolTotp" }
  | { op: "confirmTotp"; code: string }
  | { op: "session" }
  | { op: "logout" };

/** The API's error, as `{ "error": { "code", "message" } }` said it. */
export interface ApiFailure {
  status: number;
  code: string;
  message: string;
}

/** Where sign-in stands after a step. */
export type SignInState =
  | { step: "signed_out" }
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
  logout: SignInState;
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
  | { event: "signed_out"; message: string };
