// Users: the organisation's people with search and filters (role, status,
// last sign-in) in a virtualised table (thousands of rows stay responsive),
// adding one, and one person's page: name, contact and roles; suspend,
// reactivate, deprovision and MFA reset, each saying what it does first;
// their sessions (revoke) and devices (posture, key packages, last contact,
// wipe with a reason and the device's confirmation).
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import type { Permission } from "./Console";
import { At, Confirmed, Failure, Field, Screen, useConsoleAction } from "./parts";
import { BulkImport } from "./BulkImport";

type S = components["schemas"];
type User = S["User"];
export type Role = S["Role"];

export const ROLE_LABEL: Record<Role, string> = {
  org_admin: "Administrator",
  compliance_officer: "Compliance officer",
  physician: "Physician",
  nurse: "Nurse",
  medical_assistant: "Medical assistant",
  front_desk: "Front desk",
};
export const ROLES = Object.keys(ROLE_LABEL) as Role[];

const STATUS_LABEL: Record<S["UserStatus"], string> = {
  active: "Active",
  suspended: "Suspended",
  deprovisioned: "Deprovisioned",
};

type SignedIn = "any" | "7" | "30" | "over30" | "never";

const DAY = 86400;

export function Users({ permissions, me }: { permissions: Permission[]; me: string }) {
  const [users, setUsers] = useState<User[] | null>(null);
  const [lastSignIn, setLastSignIn] = useState<Record<string, number>>({});
  const [selected, setSelected] = useState<string | null>(null);
  const [adding, setAdding] = useState<"one" | "csv" | null>(null);
  const { failure, run } = useConsoleAction();
  const [query, setQuery] = useState("");
  const [role, setRole] = useState<Role | "any">("any");
  const [status, setStatus] = useState<S["UserStatus"] | "any">("active");
  const [signedIn, setSignedIn] = useState<SignedIn>("any");
  const manage = permissions.includes("users_manage");

  const load = useCallback(async () => {
    const r = await run(() => result(consoleApi.GET("/api/v1/users")));
    if (r) {
      setUsers(r.value.users);
      setLastSignIn(r.value.last_sign_in_at ?? {});
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    load();
  }, [load]);

  const shown = useMemo(() => {
    if (!users) return [];
    const q = query.trim().toLowerCase();
    const now = Date.now() / 1000;
    return users
      .filter((u) => !q || u.display_name.toLowerCase().includes(q) || u.email.toLowerCase().includes(q))
      .filter((u) => role === "any" || u.roles.includes(role))
      .filter((u) => status === "any" || u.status === status)
      .filter((u) => {
        const at = lastSignIn[u.id];
        switch (signedIn) {
          case "any":
            return true;
          case "never":
            return at === undefined;
          case "over30":
            return at === undefined || now - at > 30 * DAY;
          default:
            return at !== undefined && now - at <= Number(signedIn) * DAY;
        }
      })
      .sort((a, b) => a.display_name.localeCompare(b.display_name));
  }, [users, query, role, status, signedIn, lastSignIn]);

  const user = users?.find((u) => u.id === selected) ?? null;
  if (user) {
    return (
      <UserPage
        user={user}
        lastSignIn={lastSignIn[user.id]}
        permissions={permissions}
        me={me}
        onChanged={(u) => setUsers((all) => all?.map((x) => (x.id === u.id ? u : x)) ?? null)}
        onBack={() => setSelected(null)}
      />
    );
  }
  return (
    <Screen title="Users">
      {manage && (
        <div className="actions">
          <button type="button" onClick={() => setAdding(adding === "one" ? null : "one")} aria-expanded={adding === "one"}>
            Add a user
          </button>
          <button type="button" className="secondary" onClick={() => setAdding(adding === "csv" ? null : "csv")} aria-expanded={adding === "csv"}>
            Import from CSV
          </button>
        </div>
      )}
      {adding === "one" && (
        <AddUser
          onAdded={(u) => {
            setUsers((all) => [...(all ?? []), u]);
            setAdding(null);
            setSelected(u.id);
          }}
        />
      )}
      {adding === "csv" && <BulkImport onDone={load} />}
      <form className="filters" role="search" aria-label="Find users" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label htmlFor="user-query">Name or e-mail</label>
          <input id="user-query" type="search" value={query} onChange={(e) => setQuery(e.target.value)} />
        </div>
        <div>
          <label htmlFor="user-role">Role</label>
          <select id="user-role" value={role} onChange={(e) => setRole(e.target.value as Role | "any")}>
            <option value="any">Any role</option>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {ROLE_LABEL[r]}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label htmlFor="user-status">Status</label>
          <select id="user-status" value={status} onChange={(e) => setStatus(e.target.value as S["UserStatus"] | "any")}>
            <option value="any">Any status</option>
            {(Object.keys(STATUS_LABEL) as S["UserStatus"][]).map((s) => (
              <option key={s} value={s}>
                {STATUS_LABEL[s]}
              </option>
            ))}
          </select>
        </div>
        {permissions.includes("sessions_read") && (
          <div>
            <label htmlFor="user-signed-in">Last sign-in</label>
            <select id="user-signed-in" value={signedIn} onChange={(e) => setSignedIn(e.target.value as SignedIn)}>
              <option value="any">Any time</option>
              <option value="7">In the last 7 days</option>
              <option value="30">In the last 30 days</option>
              <option value="over30">Not in the last 30 days</option>
              <option value="never">Never</option>
            </select>
          </div>
        )}
      </form>
      <Failure failure={failure} />
      {users === null && !failure && <p>Loading…</p>}
      {users !== null && (
        <>
          <p role="status" aria-live="polite">
            {shown.length === users.length ? `${users.length} people` : `${shown.length} of ${users.length} people`}
          </p>
          <UserTable users={shown} lastSignIn={lastSignIn} onOpen={setSelected} showSignIn={permissions.includes("sessions_read")} />
        </>
      )}
    </Screen>
  );
}

/**
 * The users as an ARIA table whose rows exist only while on screen: a
 * screen reader still hears the table's size and each row's position
 * (`aria-rowcount`, `aria-rowindex`).
 */
function UserTable({
  users,
  lastSignIn,
  onOpen,
  showSignIn,
}: {
  users: User[];
  lastSignIn: Record<string, number>;
  onOpen: (id: string) => void;
  showSignIn: boolean;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({
    count: users.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 48,
    overscan: 8,
  });
  return (
    <div role="table" aria-label="Users" aria-rowcount={users.length + 1} className="user-table">
      <div role="rowgroup">
        <div role="row" aria-rowindex={1} className="user-row head">
          <span role="columnheader">Name</span>
          <span role="columnheader">E-mail</span>
          <span role="columnheader">Roles</span>
          <span role="columnheader">Status</span>
          {showSignIn && <span role="columnheader">Last sign-in</span>}
        </div>
      </div>
      <div ref={scroller} className="user-scroll" role="rowgroup" tabIndex={0} aria-label="Users, scrollable">
        <div style={{ height: rows.getTotalSize(), position: "relative" }}>
          {rows.getVirtualItems().map((v) => {
            const u = users[v.index];
            return (
              <div
                key={u.id}
                role="row"
                aria-rowindex={v.index + 2}
                className="user-row"
                style={{ position: "absolute", top: 0, left: 0, right: 0, height: v.size, transform: `translateY(${v.start}px)` }}
              >
                <span role="cell">
                  <button type="button" className="link" onClick={() => onOpen(u.id)}>
                    {u.display_name}
                  </button>
                </span>
                <span role="cell">{u.email}</span>
                <span role="cell">{u.roles.map((r) => ROLE_LABEL[r]).join(", ")}</span>
                <span role="cell" className={`status ${u.status}`}>
                  {STATUS_LABEL[u.status]}
                </span>
                {showSignIn && (
                  <span role="cell">{lastSignIn[u.id] ? <At secs={lastSignIn[u.id]} /> : "Never"}</span>
                )}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

function RolePicker({ chosen, failure }: { chosen: Role[]; failure: Parameters<typeof Field>[0]["failure"] }) {
  const error = failure?.field === "roles" ? failure.message : null;
  return (
    <fieldset aria-describedby={error ? "roles-error" : undefined}>
      <legend>Roles</legend>
      {ROLES.map((r) => (
        <label key={r} className="check">
          <input type="checkbox" name="roles" value={r} defaultChecked={chosen.includes(r)} /> {ROLE_LABEL[r]}
        </label>
      ))}
      {error && (
        <p id="roles-error" className="field-error" role="alert">
          {error.charAt(0).toUpperCase() + error.slice(1)}
        </p>
      )}
    </fieldset>
  );
}

function AddUser({ onAdded }: { onAdded: (u: User) => void }) {
  const { busy, failure, run } = useConsoleAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const phone = String(f.get("phone") ?? "").trim();
    const r = await run(() =>
      result(
        consoleApi.POST("/api/v1/users", {
          body: {
            email: String(f.get("email")).trim(),
            display_name: String(f.get("display_name")).trim(),
            phone: phone || null,
            roles: f.getAll("roles") as Role[],
            password: String(f.get("password")),
            password_change_required: true,
          },
        }),
      ),
    );
    if (r) onAdded(r.value);
  };
  const fields = ["email", "display_name", "phone", "password", "roles"];
  return (
    <form onSubmit={submit} className="panel" aria-label="Add a user" noValidate>
      <h3>Add a user</h3>
      <Field name="display_name" label="Name" failure={failure}>
        {(p) => <input {...p} autoComplete="off" required />}
      </Field>
      <Field name="email" label="E-mail" failure={failure}>
        {(p) => <input {...p} type="email" autoComplete="off" required />}
      </Field>
      <Field name="phone" label="Mobile number (optional)" hint="International format, e.g. +15551234567: for escalation texts." failure={failure}>
        {(p) => <input {...p} type="tel" autoComplete="off" />}
      </Field>
      <RolePicker chosen={[]} failure={failure} />
      <Field
        name="password"
        label="Temporary password"
        hint="12 characters or more. They choose their own at first sign-in; give it to them in person or by phone, never by e-mail."
        failure={failure}
      >
        {(p) => <input {...p} type="text" autoComplete="new-password" spellCheck={false} required />}
      </Field>
      <Failure failure={failure} fields={fields} />
      <button type="submit" disabled={busy}>
        {busy ? "Adding…" : "Add user"}
      </button>
    </form>
  );
}

function UserPage({
  user,
  lastSignIn,
  permissions,
  me,
  onChanged,
  onBack,
}: {
  user: User;
  lastSignIn: number | undefined;
  permissions: Permission[];
  me: string;
  onChanged: (u: User) => void;
  onBack: () => void;
}) {
  const manage = permissions.includes("users_manage");
  const { busy, failure, run } = useConsoleAction();
  const [notice, setNotice] = useState<string | null>(null);
  const [edits, setEdits] = useState(0);
  const save = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const phone = String(f.get("phone") ?? "").trim();
    const roles = f.getAll("roles") as Role[];
    const sameRoles = roles.length === user.roles.length && roles.every((r) => user.roles.includes(r));
    const r = await run(() =>
      result(
        consoleApi.PATCH("/api/v1/users/{id}", {
          params: { path: { id: user.id } },
          body: {
            display_name: String(f.get("display_name")).trim(),
            email: String(f.get("email")).trim(),
            ...(phone ? { phone } : { clear_phone: user.phone ? true : undefined }),
            roles: sameRoles ? undefined : roles,
          },
        }),
      ),
    );
    if (r) {
      onChanged(r.value);
      setNotice("Saved.");
    }
  };
  const act = async (what: "suspend" | "reactivate" | "deprovision", done: string) => {
    setNotice(null);
    const path = `/api/v1/users/{id}/${what}` as const;
    const r = await run(() => result(consoleApi.POST(path, { params: { path: { id: user.id } } })));
    if (r) {
      onChanged(r.value);
      setEdits((n) => n + 1);
      setNotice(done);
    }
  };
  const resetMfa = async () => {
    setNotice(null);
    const r = await run(() => result(consoleApi.POST("/api/v1/users/{id}/mfa/reset", { params: { path: { id: user.id } } })));
    if (r) {
      onChanged({ ...user, mfa_enabled: false });
      setEdits((n) => n + 1);
      setNotice(`${user.display_name} sets up a new second factor at their next sign-in.`);
    }
  };
  const self = user.id === me;
  return (
    <Screen title={user.display_name}>
      <p>
        <button type="button" className="link" onClick={onBack}>
          ← All users
        </button>
      </p>
      <dl className="facts">
        <dt>Status</dt>
        <dd>{STATUS_LABEL[user.status]}</dd>
        <dt>Second factor</dt>
        <dd>{user.mfa_enabled ? "Set up" : "Not set up"}</dd>
        <dt>Added</dt>
        <dd>
          <At secs={user.created_at} />
        </dd>
        {permissions.includes("sessions_read") && (
          <>
            <dt>Last sign-in</dt>
            <dd>{lastSignIn ? <At secs={lastSignIn} /> : "Never"}</dd>
          </>
        )}
      </dl>
      {notice && <p role="status">{notice}</p>}
      {manage && user.status !== "deprovisioned" && (
        <form onSubmit={save} className="panel" aria-label="Details and roles" noValidate key={`${user.id}-${user.updated_at}`}>
          <h3>Details and roles</h3>
          <Field name="display_name" label="Name" failure={failure}>
            {(p) => <input {...p} defaultValue={user.display_name} required />}
          </Field>
          <Field name="email" label="E-mail" failure={failure}>
            {(p) => <input {...p} type="email" defaultValue={user.email} required />}
          </Field>
          <Field name="phone" label="Mobile number" hint="International format, e.g. +15551234567. Empty: none." failure={failure}>
            {(p) => <input {...p} type="tel" defaultValue={user.phone ?? ""} />}
          </Field>
          {self ? (
            <p className="hint">Your own roles are changed by another administrator.</p>
          ) : (
            <RolePicker chosen={user.roles} failure={failure} />
          )}
          <Failure failure={failure} fields={["display_name", "email", "phone", "roles"]} />
          <button type="submit" disabled={busy}>
            Save
          </button>
        </form>
      )}
      {manage && !self && (
        <div className="panel" aria-label="Account">
          <h3>Account</h3>
          <div className="actions">
            {user.status === "active" && (
              <Confirmed label="Suspend…" confirm="Suspend" busy={busy} onConfirm={() => act("suspend", `${user.display_name} is suspended.`)}>
                <p>
                  {user.display_name} is signed out everywhere now and cannot sign in until reactivated. Their devices, messages and
                  conversations stay as they are.
                </p>
              </Confirmed>
            )}
            {user.status === "suspended" && (
              <Confirmed label="Reactivate…" confirm="Reactivate" busy={busy} onConfirm={() => act("reactivate", `${user.display_name} may sign in again.`)}>
                <p>{user.display_name} may sign in again with their password and second factor.</p>
              </Confirmed>
            )}
            {user.status !== "deprovisioned" && (
              <Confirmed label="Reset second factor…" confirm="Reset second factor" busy={busy} onConfirm={resetMfa}>
                <p>
                  Their authenticator app and recovery codes stop working and their sessions end; at the next sign-in they set up a new
                  second factor. Do this only after checking who is asking, in person or by a call back.
                </p>
              </Confirmed>
            )}
            {user.status !== "deprovisioned" && (
              <Confirmed label="Deprovision…" confirm="Deprovision for good" danger busy={busy} onConfirm={() => act("deprovision", `${user.display_name} is deprovisioned.`)}>
                <p>This cannot be undone. For {user.display_name}:</p>
                <ul>
                  <li>every session ends now and they can never sign in again;</li>
                  <li>their password and second factor are erased;</li>
                  <li>they leave every conversation, and each of their devices is ordered to erase itself;</li>
                  <li>their messages stay in the conversations for the retention period, and the audit trail keeps what they did.</li>
                </ul>
              </Confirmed>
            )}
          </div>
          <Failure failure={failure} fields={["display_name", "email", "phone", "roles"]} />
        </div>
      )}
      {permissions.includes("sessions_read") && <Sessions user={user} mayRevoke={permissions.includes("sessions_revoke")} refresh={edits} />}
      {permissions.includes("devices_manage") && <Devices user={user} refresh={edits} />}
    </Screen>
  );
}

function Sessions({ user, mayRevoke, refresh }: { user: User; mayRevoke: boolean; refresh: number }) {
  const [sessions, setSessions] = useState<S["SessionSummary"][] | null>(null);
  const { busy, failure, run } = useConsoleAction();
  const load = useCallback(async () => {
    const r = await run(() => result(consoleApi.GET("/api/v1/users/{id}/sessions", { params: { path: { id: user.id } } })));
    if (r) setSessions(r.value as S["SessionSummary"][]);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [user.id]);
  useEffect(() => {
    load();
  }, [load, refresh]);
  const revoke = async (session: string) => {
    const r = await run(() =>
      result(consoleApi.DELETE("/api/v1/users/{id}/sessions/{session_id}", { params: { path: { id: user.id, session_id: session } } })),
    );
    if (r) load();
  };
  const revokeAll = async () => {
    const r = await run(() => result(consoleApi.DELETE("/api/v1/users/{id}/sessions", { params: { path: { id: user.id }, query: {} } })));
    if (r) load();
  };
  return (
    <div className="panel" aria-labelledby="sessions-title">
      <h3 id="sessions-title">Sessions</h3>
      <Failure failure={failure} />
      {sessions && sessions.length === 0 && <p>Not signed in anywhere.</p>}
      {sessions && sessions.length > 0 && (
        <>
          <table>
            <caption className="visually-hidden">Sessions of {user.display_name}</caption>
            <thead>
              <tr>
                <th scope="col">Signed in</th>
                <th scope="col">Last request</th>
                <th scope="col">Ends at the latest</th>
                <th scope="col">Second factor</th>
                {mayRevoke && <th scope="col">Action</th>}
              </tr>
            </thead>
            <tbody>
              {sessions.map((s) => (
                <tr key={s.id}>
                  <td>
                    <At secs={s.created_at} />
                  </td>
                  <td>
                    <At secs={s.last_seen_at} />
                  </td>
                  <td>
                    <At secs={s.expires_at} />
                  </td>
                  <td>{s.mfa_complete ? "Verified" : "Pending"}</td>
                  {mayRevoke && (
                    <td>
                      <button type="button" className="small secondary" disabled={busy} onClick={() => revoke(s.id)} aria-label={`Sign out the session that began ${new Date(s.created_at * 1000).toLocaleString()}`}>
                        Sign out
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {mayRevoke && (
            <button type="button" className="secondary" disabled={busy} onClick={revokeAll}>
              Sign out everywhere
            </button>
          )}
        </>
      )}
    </div>
  );
}

function Devices({ user, refresh }: { user: User; refresh: number }) {
  const [devices, setDevices] = useState<S["ManagedDevice"][] | null>(null);
  const { busy, failure, run } = useConsoleAction();
  const load = useCallback(async () => {
    const r = await run(() => result(consoleApi.GET("/api/v1/users/{id}/managed-devices", { params: { path: { id: user.id } } })));
    if (r) setDevices(r.value.devices);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [user.id]);
  useEffect(() => {
    load();
  }, [load, refresh]);
  // A pending wipe is followed until the device confirms it.
  const pending = devices?.some((d) => d.wipe?.status === "pending") ?? false;
  useEffect(() => {
    if (!pending) return;
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, [pending, load]);
  return (
    <div className="panel" aria-labelledby="devices-title">
      <h3 id="devices-title">Devices</h3>
      <Failure failure={failure} />
      {devices && devices.length === 0 && <p>No devices registered.</p>}
      {devices && devices.length > 0 && (
        <ul className="devices">
          {devices.map((d) => (
            <li key={d.id}>
              <h4>{d.name}</h4>
              <dl className="facts">
                <dt>Platform</dt>
                <dd>{d.posture ? `${d.posture.platform} ${d.posture.os_version}` : "Not reported"}</dd>
                <dt>Rooted or jailbroken</dt>
                <dd>{d.posture ? (d.posture.compromised ? "Yes" : "No") : "Not reported"}</dd>
                {!d.wipe && (
                  <>
                    <dt>Device policy</dt>
                    <dd>{d.refusals.length === 0 ? "Met" : `Not met: ${d.refusals.join("; ")}`}</dd>
                    <dt>Key packages left</dt>
                    <dd>{d.key_packages_available}</dd>
                  </>
                )}
                <dt>Last contact</dt>
                <dd>
                  <At secs={d.last_contact_at} />
                </dd>
                <dt>Registered</dt>
                <dd>
                  <At secs={d.created_at} />
                </dd>
              </dl>
              {d.wipe ? (
                <p className={`wipe ${d.wipe.status}`} role="status">
                  {d.wipe.status === "confirmed" ? (
                    <>
                      Wiped: the device confirmed it erased its messages and keys at <At secs={d.wipe.confirmed_at} />.
                    </>
                  ) : (
                    <>
                      Wipe ordered at <At secs={d.wipe.requested_at} /> (“{d.wipe.reason}”): {d.wipe.sessions_ended} session(s) ended,
                      removed from {d.wipe.conversations} conversation(s). Waiting for the device to confirm; it erases itself the next
                      time it reaches the server.
                    </>
                  )}
                </p>
              ) : (
                <WipeDevice device={d} busy={busy} onWiped={load} />
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function WipeDevice({ device, busy, onWiped }: { device: S["ManagedDevice"]; busy: boolean; onWiped: () => void }) {
  const [open, setOpen] = useState(false);
  const action = useConsoleAction();
  if (!open) {
    return (
      <button type="button" className="danger" onClick={() => setOpen(true)} disabled={busy}>
        Wipe {device.name}…
      </button>
    );
  }
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const reason = String(new FormData(e.currentTarget).get("reason")).trim();
    const r = await action.run(() =>
      result(consoleApi.POST("/api/v1/devices/{id}/wipe", { params: { path: { id: device.id } }, body: { reason } })),
    );
    if (r) {
      setOpen(false);
      onWiped();
    }
  };
  return (
    <form onSubmit={submit} className="confirm" aria-label={`Wipe ${device.name}`} noValidate>
      <p>
        For a lost or stolen device: its sessions end now, it leaves every conversation, and the next time it reaches the server it
        erases its messages and keys and says so. It cannot be used again.
      </p>
      <Field name="reason" label="Reason (kept in the audit trail)" failure={action.failure}>
        {(p) => <input {...p} required maxLength={500} />}
      </Field>
      <Failure failure={action.failure} fields={["reason"]} />
      <div className="actions">
        <button type="submit" className="danger" disabled={action.busy}>
          Wipe the device
        </button>
        <button type="button" className="secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
