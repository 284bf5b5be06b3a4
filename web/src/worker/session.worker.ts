// The session worker: the only holder of the session token. The page talks
// to it with `Request`s (protocol.ts) and never sees the token; page script,
// extensions reading the DOM or storage, and a foreign page's requests have
// nothing to take. The MLS core (wasm) and the sealed store join it here.
import createClient from "openapi-fetch";
import type { paths } from "../api/schema";
import type {
  ApiFailure,
  Envelope,
  Outgoing,
  Reply,
  Request,
  SignInState,
} from "./protocol";

const api = createClient<paths>({ baseUrl: self.location.origin });

let token: string | null = null;
let mfaToken: string | null = null;

// Every authenticated call carries the token; a 401 anywhere means the
// session ended (expired, revoked, wiped): forget it and tell the page.
api.use({
  onRequest({ request }) {
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && token) {
      token = null;
      post({ event: "signed_out", message: "Your session ended. Sign in again." });
    }
    return response;
  },
});

function post(m: Outgoing) {
  (self as unknown as Worker).postMessage(m);
}

function failure(status: number, body: unknown): ApiFailure {
  const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
  return {
    status,
    code: e?.code ?? "unavailable",
    message: e?.message ?? "The server could not be reached. Check the connection and try again.",
  };
}

class Failed extends Error {
  constructor(readonly failure: ApiFailure) {
    super(failure.message);
  }
}

/** The data of an openapi-fetch result, or throws its API failure. */
function data<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.data === undefined) throw new Failed(failure(r.response.status, r.error));
  return r.data;
}

async function state(): Promise<SignInState> {
  if (!token) return { step: mfaToken ? "mfa_required" : "signed_out" };
  const session = data(await api.GET("/api/v1/auth/session"));
  if (session.mfa_enrolment_required) return { step: "mfa_enrolment_required", session };
  if (session.password_change_required) return { step: "password_change_required", session };
  return { step: "complete", session };
}

async function handle(deviceId: string, r: Request): Promise<unknown> {
  switch (r.op) {
    case "login": {
      token = null;
      mfaToken = null;
      const res = data(
        await api.POST("/api/v1/auth/login", {
          body: { org: r.org.trim(), email: r.email.trim(), password: r.password, device_id: deviceId },
        }),
      );
      if (res.step === "mfa_required") mfaToken = res.mfa_token ?? null;
      else token = res.session?.token ?? null;
      return state();
    }
    case "verifyMfa": {
      if (!mfaToken) throw new Failed({ status: 401, code: "unauthenticated", message: "Sign in again." });
      const issued = data(
        await api.POST("/api/v1/auth/mfa/verify", { body: { mfa_token: mfaToken, code: r.code } }),
      );
      mfaToken = null;
      token = issued.token;
      return state();
    }
    case "enrolTotp":
      return data(await api.POST("/api/v1/auth/totp/enroll"));
    case "confirmTotp": {
      const confirmed = data(await api.POST("/api/v1/auth/totp/confirm", { body: { code: r.code } }));
      return { recovery_codes: confirmed.recovery_codes, state: await state() };
    }
    case "session":
      return state();
    case "logout": {
      if (token) await api.POST("/api/v1/auth/logout");
      token = null;
      mfaToken = null;
      return state();
    }
  }
}

self.onmessage = async (e: MessageEvent<Envelope>) => {
  const { id, deviceId, request } = e.data;
  let reply: Reply<unknown>;
  try {
    reply = { ok: true, value: await handle(deviceId, request) };
  } catch (err) {
    reply = {
      ok: false,
      error: err instanceof Failed ? err.failure : failure(0, undefined),
    };
  }
  post({ id, reply });
};
