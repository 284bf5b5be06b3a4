// The session worker: the only holder of the session token, and of this
// browser's device (MLS keys, decrypted messages; device.ts). The page talks
// to it with `Request`s (protocol.ts) and never sees a token, a key or the
// store: page script, extensions reading the DOM or storage, and a foreign
// page's requests have nothing to take.
import { api, call, currentToken, failure, Failed, hasToken, post, relay, setToken, whenSessionEnds } from "./api";
import * as clinical from "./clinical";
import * as device from "./device";
import * as patients from "./patients";
import * as push from "./push";
import type { CurrentSession, Envelope, Reply, Request, SignInState } from "./protocol";

let mfaToken: string | null = null;
let user: string | null = null;
/** Who the session signs in (the server's last answer), saved with the token. */
let current: CurrentSession | null = null;

let wiping = false;
whenSessionEnds((code) => {
  user = null;
  if (code === "device_wiped") {
    if (wiping) return;
    wiping = true;
    // The ended session still confirms the erasure (the server accepts it
    // for that one call), so the token goes after.
    device
      .obeyWipe()
      .finally(() => {
        setToken(null);
        wiping = false;
        post({ event: "wiped", message: "This browser was wiped by your organisation. Its messages are erased." });
      });
  } else {
    setToken(null);
    // A shared computer keeps nothing past the session: the store goes too
    // (the device stays on the server until an administrator removes it,
    // as the session that could remove it has ended).
    const shared = device.isShared();
    device.close();
    (shared ? device.eraseStore() : device.forgetSession()).finally(() =>
      post({ event: "signed_out", message: "Your session ended. Sign in again." }),
    );
  }
});

async function state(deviceId: string): Promise<SignInState> {
  if (!hasToken()) {
    if (mfaToken) return { step: "mfa_required" };
    return (await device.hasSavedSession(deviceId)) ? { step: "resume" } : { step: "signed_out" };
  }
  return stepOf(await call(() => api.GET("/api/v1/auth/session")));
}

function stepOf(session: CurrentSession): SignInState {
  user = session.user.id;
  current = session;
  if (session.mfa_enrolment_required) return { step: "mfa_enrolment_required", session };
  if (session.password_change_required) return { step: "password_change_required", session };
  return { step: "complete", session };
}

/** The device is open and signed in: a reload may resume this session with the PIN. */
async function remember() {
  const token = currentToken();
  if (token && current) await device.rememberSession({ token, session: current });
}

function signedIn(): string {
  if (!user) throw new Failed({ status: 401, code: "unauthenticated", message: "Sign in again." });
  return user;
}

async function handle(deviceId: string, r: Request): Promise<unknown> {
  switch (r.op) {
    case "login": {
      setToken(null);
      mfaToken = null;
      device.sharedComputer(r.shared);
      const res = await call(() =>
        api.POST("/api/v1/auth/login", {
          body: { org: r.org.trim(), email: r.email.trim(), password: r.password, device_id: deviceId },
        }),
      );
      if (res.step === "mfa_required") mfaToken = res.mfa_token ?? null;
      else setToken(res.session?.token ?? null);
      return state(deviceId);
    }
    case "verifyMfa": {
      if (!mfaToken) throw new Failed({ status: 401, code: "unauthenticated", message: "Sign in again." });
      const token = mfaToken;
      const issued = await call(() => api.POST("/api/v1/auth/mfa/verify", { body: { mfa_token: token, code: r.code } }));
      mfaToken = null;
      setToken(issued.token);
      return state(deviceId);
    }
    case "enrolTotp":
      return call(() => api.POST("/api/v1/auth/totp/enroll"));
    case "confirmTotp": {
      const confirmed = await call(() => api.POST("/api/v1/auth/totp/confirm", { body: { code: r.code } }));
      return { recovery_codes: confirmed.recovery_codes, state: await state(deviceId) };
    }
    case "session":
      return state(deviceId);
    case "resume": {
      // The PIN opens the store and the session sealed in it; the server
      // says whether that session still holds.
      const saved = await device.openSaved(deviceId, r.pin);
      setToken(saved.token);
      let s: SignInState;
      try {
        s = await state(deviceId);
      } catch (e) {
        if (!(e instanceof Failed) || e.failure.code !== "unavailable") {
          // Ended (the 401 listener signed out) or refused: nothing stays open.
          device.close();
          throw e;
        }
        // Out of reach: this browser's copy, as the session last was.
        s = stepOf(saved.session);
      }
      await device.resumed();
      return s;
    }
    case "logout": {
      const remove = r.remove || device.isShared();
      if (remove) {
        // The removal ended the session (and confirmed with it): no sign-out call after.
        await device.removeThisDevice(deviceId);
        setToken(null);
      }
      device.close();
      if (!remove) await device.forgetSession();
      if (hasToken()) await api.POST("/api/v1/auth/logout").catch(() => {});
      setToken(null);
      mfaToken = null;
      user = null;
      return { state: await state(deviceId), removed: remove };
    }
    case "leftBehind":
      return !hasToken() && device.eraseIfLeftBehind(deviceId);
    case "deviceState":
      signedIn();
      return device.state(deviceId);
    case "takeOver":
      signedIn();
      return device.takeOver(deviceId);
    case "createDevice":
      await device.create(signedIn(), r.pin, r.name);
      await remember();
      return device.state(deviceId);
    case "unlock":
      await device.unlock(signedIn(), r.pin);
      await remember();
      return device.state(deviceId);
    case "lock":
      device.close();
      return device.state(deviceId);
    case "conversations":
      return device.conversations();
    case "messages":
      return device.messages(r.conversation, r.limit);
    case "colleagues":
      return device.colleagues();
    case "send":
      return device.send(r.conversation, r.text, r.priority, r.replyTo, r.files, r.ttlSecs);
    case "setLifespan":
      return device.setLifespan(r.conversation, r.ttlSecs);
    case "forward":
      return device.forward(r.from, r.message, r.to);
    case "attachment":
      return device.attachment(r.conversation, r.message, r.attachment);
    case "startConversation":
      return device.startConversation(r.conversation);
    case "addMember":
      return device.addMember(r.conversation, r.user);
    case "removeMember":
      return device.removeMember(r.conversation, r.user);
    case "leave":
      return device.leave(r.conversation);
    case "markShown":
      device.markShown(r.conversation, r.messages);
      return null;
    case "receipts":
      return device.receipts(r.conversation, r.messages);
    case "awaiting":
      return clinical.awaiting();
    case "escalations":
      return clinical.escalationsOf(r.conversation, r.messages);
    case "acknowledge":
      return clinical.acknowledge(r.conversation, r.message);
    case "roles":
      return clinical.roleList();
    case "page":
      return clinical.page(r.role, r.patientRef, r.text, r.priority);
    case "presence":
      return clinical.presence();
    case "setPresence":
      return clinical.setPresence(r.status, r.until);
    case "findColleagues":
      return clinical.findColleagues(r.query);
    case "recall":
      return clinical.recall(r.conversation, r.message);
    case "search":
      return clinical.search(r.query);
    case "openPatient":
      return clinical.openPatient(r.patientRef, r.reason);
    case "breakGlass":
      return clinical.breakGlass();
    case "locate":
      return clinical.locate(r.message);
    case "patients":
      return patients.patients();
    case "patientThread":
      return patients.thread(r.patient);
    case "sendSecure":
      return patients.sendSecure(r.patient, r.text, r.teamReadable);
    case "templates":
      return patients.templates();
    case "sendTemplate":
      return patients.sendTemplate(r.patient, r.template, r.params);
    case "pushSettings":
      return push.settings();
    case "pushSubscribe":
      return push.subscribe(r.subscription);
    case "console":
      signedIn();
      return relay(r.method, r.path, r.body, r.contentType);
    case "pushUnsubscribe":
      return push.unsubscribe();
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
      error:
        err instanceof Failed
          ? err.failure
          : { ...failure(0, undefined), message: err instanceof Error ? err.message : String(err) },
    };
  }
  post({ id, reply });
};

// A fault the worker did not expect (never content: errors here carry the
// server's or the core's wording) shows in the browser's console, where a
// help desk and the browser tests look.
self.addEventListener("unhandledrejection", (e) => console.error("wardline worker:", e.reason));
