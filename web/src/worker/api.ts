// The worker's API client. The session token lives here, in the worker's
// memory, and at rest only sealed in this device's store under the PIN
// (ARCHITECTURE.md, "Browsers hold no ambient credential").
import createClient from "openapi-fetch";
import type { paths } from "../api/schema";
import type { ApiFailure, Outgoing } from "./protocol";

export const api = createClient<paths>({ baseUrl: self.location.origin });

let token: string | null = null;

export function setToken(t: string | null) {
  token = t;
}

export function hasToken(): boolean {
  return token !== null;
}

/** The token, for sealing into this device's store (device.ts) and nothing else. */
export function currentToken(): string | null {
  return token;
}

/** What the server's 401 said, for the one listener that acts on it. */
let onSessionEnded: (code: string) => void = () => {};
export function whenSessionEnds(f: (code: string) => void) {
  onSessionEnded = f;
}

// Every authenticated call carries the token; a 401 anywhere means the
// session ended (expired, revoked, or the device wiped).
api.use({
  onRequest({ request }) {
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  async onResponse({ response }) {
    await noticeSessionEnd(response);
    return response;
  },
});

/** A 401 to a request that carried the token: the session ended; say why. */
async function noticeSessionEnd(response: Response) {
  if (response.status !== 401 || !token) return;
  const body = await response
    .clone()
    .json()
    .catch(() => undefined);
  onSessionEnded(failure(401, body).code);
}

export function post(m: Outgoing) {
  (self as unknown as Worker).postMessage(m);
}

export function failure(status: number, body: unknown): ApiFailure {
  const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
  return {
    status,
    code: e?.code ?? "unavailable",
    message: e?.message ?? "The server could not be reached. Check the connection and try again.",
  };
}

export class Failed extends Error {
  constructor(readonly failure: ApiFailure) {
    super(failure.message);
  }
}

/** The data of an openapi-fetch result, or throws its API failure. */
export function data<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.data === undefined) throw new Failed(failure(r.response.status, r.error));
  return r.data;
}

/** As `data`, for a call the network may not carry (offline): the failure is `unavailable`. */
export async function call<T>(
  f: () => Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let r;
  try {
    r = await f();
  } catch {
    throw new Failed(failure(0, undefined));
  }
  return data(r);
}

/**
 * The administration and compliance console's API paths: the only ones a
 * page may call through the worker by path (`relay`). Messaging, sign-in and
 * patient texting stay behind the worker's own operations.
 */
const CONSOLE_PATHS = [
  /^\/api\/v1\/users(\/[0-9a-f-]{36}(\/(suspend|reactivate|deprovision|mfa\/reset|sessions(\/[0-9a-f-]{36})?|managed-devices|compliance-officer))?)?$/,
  /^\/api\/v1\/roles$/,
  /^\/api\/v1\/org(\/policy)?$/,
  /^\/api\/v1\/lifecycle\/(policy|preview|receipts)$/,
  /^\/api\/v1\/legal-holds(\/[0-9a-f-]{36}\/release)?$/,
  /^\/api\/v1\/audit\/(events|export|checkpoints\/latest|patients\/[^/?#]+\/access-report)$/,
  /^\/api\/v1\/devices\/([0-9a-f-]{36}\/wipe|wipes)$/,
  /^\/api\/v1\/routing\/(break-glass|notifications|directory|reports\/responses)$/,
  /^\/api\/v1\/sms\/templates$/,
  /^\/api\/v1\/reports\/activity$/,
];

/** What `relay` answers: the server's status, body and its type. */
export interface Relayed {
  status: number;
  contentType: string | null;
  body: ArrayBuffer;
}

/**
 * One console request, sent with the session token, for a page that never
 * holds it. Refuses paths outside the console's (`CONSOLE_PATHS`) and
 * anything but same-origin API paths; a 401 ends the session as elsewhere.
 */
export async function relay(method: string, pathAndQuery: string, body: ArrayBuffer | null, contentType: string | null): Promise<Relayed> {
  const url = new URL(pathAndQuery, self.location.origin);
  if (url.origin !== self.location.origin || !CONSOLE_PATHS.some((p) => p.test(url.pathname))) {
    throw new Failed({ status: 400, code: "bad_request", message: "not a console request" });
  }
  if (!["GET", "POST", "PUT", "PATCH", "DELETE"].includes(method)) {
    throw new Failed({ status: 405, code: "method_not_allowed", message: "method not allowed" });
  }
  const headers = new Headers();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (contentType) headers.set("Content-Type", contentType);
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "omit", redirect: "error" });
  } catch {
    throw new Failed(failure(0, undefined));
  }
  await noticeSessionEnd(response);
  const answer = await response.arrayBuffer();
  return { status: response.status, contentType: response.headers.get("Content-Type"), body: answer };
}
