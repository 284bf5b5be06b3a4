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
    if (response.status === 401 && token) {
      const body = await response
        .clone()
        .json()
        .catch(() => undefined);
      onSessionEnded(failure(401, body).code);
    }
    return response;
  },
});

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
