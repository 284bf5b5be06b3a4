// Screens of the web app. Part 1 so far: sign-in (password, then the second
// factor, or enrolling one on first sign-in with the recovery codes shown
// once), who is signed in, and signing out; an ended session returns to
// sign-in at once.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { PinForm, Problem, QrCode, Shell, useAction } from "./ui";
import { ask, forgetDeviceId, onNews } from "./session";
import { DeviceArea } from "./Chat";
import { ConsoleNav, ConsoleScreen, screensFor, useScreen } from "./console/Console";
import type { SignInState, TotpEnrolment } from "./worker/protocol";

/** Set in `sessionStorage` at every load: there as long as the tab is. */
const TAB_MARK = "wardline.tab";

export function App() {
  const [state, setState] = useState<SignInState | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    (async () => {
      // The tab's own storage outlives a reload, not the tab: without the
      // mark this is a new tab, where a shared computer's last user may
      // have left their store by closing the tab instead of signing out.
      const newTab = !sessionStorage.getItem(TAB_MARK);
      sessionStorage.setItem(TAB_MARK, "1");
      if (newTab) {
        const left = await ask({ op: "leftBehind" });
        if (left.ok && left.value) {
          await forgetDeviceId();
          setNotice(
            "Wardline was closed on this shared computer without signing out: everything it kept here for the last person is now erased.",
          );
        }
      }
      const r = await ask({ op: "session" });
      setState(r.ok ? r.value : { step: "signed_out" });
    })();
    return onNews((news) => {
      if (news.event !== "signed_out" && news.event !== "wiped") return;
      setNotice(news.message);
      setState({ step: "signed_out" });
    });
  }, []);

  const go = (s: SignInState) => {
    setNotice(null);
    setState(s);
  };

  if (!state) return <Shell title="Wardline"><p>Loading…</p></Shell>;
  switch (state.step) {
    case "signed_out":
      return <SignIn notice={notice} onDone={go} />;
    case "resume":
      return <Resume onDone={go} />;
    case "mfa_required":
      return <SecondFactor onDone={go} />;
    case "mfa_enrolment_required":
      return <EnrolSecondFactor onDone={go} />;
    case "password_change_required":
    case "complete":
      return <Home state={state} onDone={go} />;
  }
}

function SignIn({ notice, onDone }: { notice: string | null; onDone: (s: SignInState) => void }) {
  const { busy, failure, run } = useAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const s = await run(() =>
      ask({
        op: "login",
        org: String(f.get("org")),
        email: String(f.get("email")),
        password: String(f.get("password")),
        shared: f.get("shared") === "on",
      }),
    );
    if (s) onDone(s);
  };
  return (
    <Shell title="Sign in">
      {notice && <p role="status">{notice}</p>}
      <form onSubmit={submit}>
        <label htmlFor="org">Organisation</label>
        <input id="org" name="org" autoComplete="organization" required />
        <label htmlFor="email">E-mail</label>
        <input id="email" name="email" type="email" autoComplete="username" required />
        <label htmlFor="password">Password</label>
        <input id="password" name="password" type="password" autoComplete="current-password" required />
        <label className="check">
          <input type="checkbox" name="shared" /> This is a shared computer: keep nothing of mine here after I sign out
        </label>
        <Problem failure={failure} />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </Shell>
  );
}

/**
 * A reload (or a browser restarted): this browser keeps the session sealed
 * in its store, so the PIN opens both — offline too, on this browser's copy.
 */
function Resume({ onDone }: { onDone: (s: SignInState) => void }) {
  const { busy, failure, run } = useAction();
  const resume = async (pin: string) => {
    const s = await run(() => ask({ op: "resume", pin }));
    if (s) onDone(s);
  };
  return (
    <Shell title="Unlock">
      <PinForm busy={busy} failure={failure} onPin={resume} />
      <p>
        <button type="button" className="secondary" onClick={() => onDone({ step: "signed_out" })}>
          Sign in with your password instead
        </button>
      </p>
    </Shell>
  );
}

function CodeField({ label }: { label: string }) {
  return (
    <>
      <label htmlFor="code">{label}</label>
      <input
        id="code"
        name="code"
        inputMode="numeric"
        autoComplete="one-time-code"
        aria-describedby="code-hint"
        required
      />
      <p id="code-hint" className="hint">
        Spaces and dashes are ignored.
      </p>
    </>
  );
}

function SecondFactor({ onDone }: { onDone: (s: SignInState) => void }) {
  const { busy, failure, run } = useAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const code = String(new FormData(e.currentTarget).get("code"));
    const s = await run(() => ask({ op: "verifyMfa", code }));
    if (s) onDone(s);
  };
  return (
    <Shell title="Second factor">
      <form onSubmit={submit}>
        <CodeField label="Code from your authenticator app, or a recovery code" />
        <Problem failure={failure} />
        <button type="submit" disabled={busy}>
          Continue
        </button>
      </form>
    </Shell>
  );
}

function EnrolSecondFactor({ onDone }: { onDone: (s: SignInState) => void }) {
  const { busy, failure, run } = useAction();
  const [enrolment, setEnrolment] = useState<TotpEnrolment | null>(null);
  const [codes, setCodes] = useState<{ recovery_codes: string[]; state: SignInState } | null>(null);
  useEffect(() => {
    run(() => ask({ op: "enrolTotp" })).then((e) => e && setEnrolment(e));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const code = String(new FormData(e.currentTarget).get("code"));
    const done = await run(() => ask({ op: "confirmTotp", code }));
    if (done) setCodes(done);
  };
  if (codes) {
    return (
      <Shell title="Recovery codes">
        <p>
          Each code signs you in once if you lose your authenticator. Keep them somewhere safe: they are shown only now.
        </p>
        <ul className="codes" aria-label="Recovery codes">
          {codes.recovery_codes.map((c) => (
            <li key={c}>
              <code>{c}</code>
            </li>
          ))}
        </ul>
        <button type="button" onClick={() => onDone(codes.state)}>
          I have kept them
        </button>
      </Shell>
    );
  }
  return (
    <Shell title="Set up your second factor">
      <p>Your organisation asks for a code from an authenticator app at each sign-in.</p>
      {enrolment && (
        <>
          <p>Scan this code with the app, then type the code it shows.</p>
          <QrCode text={enrolment.otpauth_uri} label="QR code that adds this account to an authenticator app" />
          <p>
            Cannot scan? Type this key into the app instead: <code className="secret">{enrolment.secret_base32.match(/.{1,4}/g)?.join(" ")}</code>
          </p>
          <form onSubmit={submit}>
            <CodeField label="Code from your authenticator app" />
            <Problem failure={failure} />
            <button type="submit" disabled={busy}>
              Confirm
            </button>
          </form>
        </>
      )}
      {!enrolment && <Problem failure={failure} />}
    </Shell>
  );
}

function Home({
  state,
  onDone,
}: {
  state: Extract<SignInState, { step: "complete" | "password_change_required" }>;
  onDone: (s: SignInState) => void;
}) {
  const { busy, run } = useAction();
  const s = state.session;
  const screens = useMemo(() => screensFor(s.permissions), [s.permissions]);
  const [screen, setScreen] = useScreen(screens);
  const signOut = async (remove: boolean) => {
    const r = await run(() => ask({ op: "logout", remove }));
    if (r?.removed) await forgetDeviceId();
    onDone(r?.state ?? { step: "signed_out" });
  };
  return (
    <Shell title="Wardline" wide>
      <header className="bar">
        <p>
          Signed in as <strong>{s.user.display_name}</strong> ({s.user.email}) at {s.organisation.name}.
        </p>
        <div className="actions">
          <button type="button" onClick={() => signOut(false)} disabled={busy}>
            Sign out
          </button>
          <button type="button" className="secondary" onClick={() => signOut(true)} disabled={busy}>
            Sign out and remove this browser
          </button>
        </div>
      </header>
      {state.step === "password_change_required" ? (
        <p role="status">Your password was set by an administrator: choose your own before you continue.</p>
      ) : (
        <>
          {screens.length > 0 && <ConsoleNav screens={screens} screen={screen} onScreen={setScreen} />}
          {/* Messages stay open behind a console screen: their alerts and
              sync go on while an administrator works. */}
          <div hidden={screen !== null}>
            <DeviceArea me={s.user.id} />
          </div>
          {screen && <ConsoleScreen screen={screen} permissions={s.permissions} me={s.user.id} />}
        </>
      )}
    </Shell>
  );
}
