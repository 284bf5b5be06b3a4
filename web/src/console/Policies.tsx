// Policies: the organisation's policy (sessions, messaging, devices, patient
// texting, routing) and the lifecycle policy. Each field says its unit and
// range; the server checks the whole policy and its message is shown on the
// field it names. A lifecycle change is previewed first — what it would
// delete now, beside what the current policy deletes — and applied only as
// previewed.
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import type { components } from "../api/schema";
import { consoleApi, result, type ConsoleFailure } from "./client";
import type { Permission } from "./Console";
import { Confirmed, Failure, Field, Screen, duration, useConsoleAction } from "./parts";

type S = components["schemas"];
type OrgPolicy = S["OrgPolicy"];

type Kind = "secs" | "int" | "opt-int" | "bool" | "text" | "opt-text" | "list" | "os-versions" | "quiet-hours";

interface Desc {
  path: string;
  label: string;
  kind: Kind;
  hint?: string;
}

interface Group {
  legend: string;
  fields: Desc[];
}

const GROUPS: Group[] = [
  {
    legend: "Sessions",
    fields: [
      { path: "idle_timeout_secs", label: "Sign out after inactivity (seconds)", kind: "secs", hint: "60 to 86,400." },
      {
        path: "absolute_lifetime_secs",
        label: "Sign out at the latest after (seconds)",
        kind: "secs",
        hint: "300 to 604,800, and not less than the inactivity limit.",
      },
      { path: "mfa_required", label: "Everyone must use a second factor", kind: "bool" },
    ],
  },
  {
    legend: "Messaging",
    fields: [
      { path: "messaging.max_attachment_bytes", label: "Largest attachment (bytes)", kind: "int", hint: "1,024 to 104,857,600." },
      { path: "messaging.max_group_members", label: "Most members of a group", kind: "int", hint: "2 to 5,000." },
      {
        path: "messaging.history_days",
        label: "History shared with a new member (days)",
        kind: "int",
        hint: "0 to 90; 0: a newcomer sees only what comes after they join.",
      },
    ],
  },
  {
    legend: "Devices",
    fields: [
      { path: "devices.require_local_pin", label: "Devices must be locked with a PIN", kind: "bool" },
      { path: "devices.min_pin_length", label: "Shortest PIN (characters)", kind: "int", hint: "4 to 64." },
      { path: "devices.lock_after_idle_secs", label: "Lock the app after (seconds unattended)", kind: "secs", hint: "30 to 86,400." },
      {
        path: "devices.max_offline_days",
        label: "Refuse to open offline after (days without the server)",
        kind: "opt-int",
        hint: "1 to 365; empty: no limit.",
      },
      { path: "devices.allow_copy", label: "Message text may be copied out of the app", kind: "bool" },
      { path: "devices.allow_forwarding", label: "Messages may be forwarded to another conversation", kind: "bool" },
      {
        path: "devices.allowed_attachment_types",
        label: "Attachment types allowed",
        kind: "list",
        hint: "MIME types separated by commas, e.g. image/*, application/pdf; empty: any.",
      },
      { path: "devices.block_compromised", label: "Refuse rooted or jailbroken devices", kind: "bool" },
      { path: "devices.require_posture", label: "Refuse devices that have not reported their platform and OS", kind: "bool" },
      {
        path: "devices.min_os_versions",
        label: "Lowest OS versions",
        kind: "os-versions",
        hint: "platform=version separated by commas, e.g. ios=17.4, android=13.",
      },
    ],
  },
  {
    legend: "Patient texting",
    fields: [
      { path: "patients.practice_phone", label: "Practice phone line", kind: "text", hint: "Filled into texts and the HELP reply." },
      {
        path: "patients.default_region",
        label: "Region of numbers written without a country code",
        kind: "opt-text",
        hint: "ISO 3166 code such as US or GB; empty: every number needs its +country code.",
      },
      { path: "patients.link_ttl_secs", label: "Secure links last (seconds)", kind: "secs", hint: "300 to 604,800." },
      { path: "patients.link_max_uses", label: "Identity checks one link allows", kind: "int", hint: "1 to 50." },
      { path: "patients.verify_max_failures", label: "Failed checks before a link locks", kind: "int", hint: "1 to 20." },
      {
        path: "patients.quiet_hours",
        label: "Quiet hours (no reminders)",
        kind: "quiet-hours",
        hint: "From and to as HH:MM in the practice's time zone (an IANA name such as America/New_York); empty: none.",
      },
    ],
  },
  {
    legend: "Clinical routing",
    fields: [
      { path: "routing.break_glass_minutes", label: "Break-glass access lasts (minutes)", kind: "int", hint: "5 to 720." },
      { path: "routing.sms_per_hour", label: "Escalation texts per person per hour", kind: "int", hint: "1 to 30." },
      {
        path: "routing.renotify_min_secs",
        label: "Alert again about one conversation at most every (seconds)",
        kind: "secs",
        hint: "30 to 3,600.",
      },
    ],
  },
];

function get(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

function set(obj: Record<string, unknown>, path: string, value: unknown) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  o[keys[keys.length - 1]] = value;
}

/** What a field's input holds, read back into the policy's type. */
function read(kind: Kind, f: FormData, path: string): unknown {
  const text = String(f.get(path) ?? "").trim();
  const num = (t: string) => (t === "" || !/^-?\d+$/.test(t) ? NaN : Number(t));
  switch (kind) {
    case "bool":
      return f.get(path) === "on";
    case "secs":
    case "int":
      return num(text);
    case "opt-int":
      return text === "" ? null : num(text);
    case "text":
      return text;
    case "opt-text":
      return text === "" ? null : text;
    case "list":
      return text === "" ? [] : text.split(",").map((t) => t.trim()).filter(Boolean);
    case "os-versions":
      return Object.fromEntries(
        text
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean)
          .map((t) => t.split("=").map((x) => x.trim())),
      );
    case "quiet-hours": {
      const [start, end, time_zone] = ["start", "end", "tz"].map((k) => String(f.get(`${path}.${k}`) ?? "").trim());
      return start || end || time_zone ? { start, end, time_zone } : null;
    }
  }
}

function Control({ desc, value, failure }: { desc: Desc; value: unknown; failure: ConsoleFailure | null }) {
  const [secs, setSecs] = useState(value as number);
  if (desc.kind === "bool") {
    return (
      <label className="check">
        <input type="checkbox" name={desc.path} defaultChecked={value === true} /> {desc.label}
      </label>
    );
  }
  if (desc.kind === "quiet-hours") {
    const q = value as S["QuietHours"] | null;
    const error = failure?.field === desc.path ? failure.message : null;
    const id = `f-${desc.path.replace(/\./g, "-")}`;
    return (
      <fieldset className={error ? "invalid" : undefined} aria-describedby={`${id}-hint${error ? ` ${id}-error` : ""}`}>
        <legend>{desc.label}</legend>
        <div className="inline-fields">
          <span>
            <label htmlFor={`${id}-start`}>From</label>
            <input id={`${id}-start`} name={`${desc.path}.start`} defaultValue={q?.start ?? ""} placeholder="21:00" size={6} />
          </span>
          <span>
            <label htmlFor={`${id}-end`}>To</label>
            <input id={`${id}-end`} name={`${desc.path}.end`} defaultValue={q?.end ?? ""} placeholder="08:00" size={6} />
          </span>
          <span>
            <label htmlFor={`${id}-tz`}>Time zone</label>
            <input id={`${id}-tz`} name={`${desc.path}.tz`} defaultValue={q?.time_zone ?? ""} placeholder="America/New_York" />
          </span>
        </div>
        <p id={`${id}-hint`} className="hint">
          {desc.hint}
        </p>
        {error && (
          <p id={`${id}-error`} className="field-error" role="alert">
            {error.charAt(0).toUpperCase() + error.slice(1)}
          </p>
        )}
      </fieldset>
    );
  }
  const shown = (() => {
    switch (desc.kind) {
      case "list":
        return (value as string[]).join(", ");
      case "os-versions":
        return Object.entries(value as Record<string, string>)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ");
      default:
        return value === null || value === undefined ? "" : String(value);
    }
  })();
  const hint = desc.kind === "secs" && Number.isFinite(secs) && secs > 0 ? `${desc.hint} Now: ${duration(secs)}.` : desc.hint;
  const numeric = desc.kind === "secs" || desc.kind === "int" || desc.kind === "opt-int";
  return (
    <Field name={desc.path} label={desc.label} hint={hint} failure={failure}>
      {(p) => (
        <input
          {...p}
          defaultValue={shown}
          inputMode={numeric ? "numeric" : undefined}
          onChange={desc.kind === "secs" ? (e) => setSecs(Number(e.target.value)) : undefined}
        />
      )}
    </Field>
  );
}

export function Policies({ permissions }: { permissions: Permission[] }) {
  return (
    <Screen title="Policies">
      {permissions.includes("org_policy_manage") && <OrgPolicyForm />}
      {permissions.includes("lifecycle_manage") && <LifecycleForm />}
    </Screen>
  );
}

function OrgPolicyForm() {
  const [policy, setPolicy] = useState<OrgPolicy | null>(null);
  const [saved, setSaved] = useState(0);
  const { busy, failure, setFailure, run } = useConsoleAction();
  useEffect(() => {
    run(() => result(consoleApi.GET("/api/v1/org/policy"))).then((r) => r && setPolicy(r.value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (!policy) return;
    const f = new FormData(e.currentTarget);
    const next = structuredClone(policy) as unknown as Record<string, unknown>;
    for (const g of GROUPS)
      for (const d of g.fields) {
        const v = read(d.kind, f, d.path);
        if (typeof v === "number" && Number.isNaN(v)) {
          setFailure({ status: 0, code: "validation", field: d.path, message: `${d.label} is a whole number` });
          return;
        }
        set(next, d.path, v);
      }
    const r = await run(() => result(consoleApi.PUT("/api/v1/org/policy", { body: next as unknown as OrgPolicy })));
    if (r) {
      setPolicy(r.value);
      setSaved((n) => n + 1);
    }
  };
  const fields = GROUPS.flatMap((g) => g.fields.map((d) => d.path));
  return (
    <form onSubmit={submit} className="panel policy" aria-labelledby="org-policy-title" noValidate>
      <h3 id="org-policy-title">Organisation policy</h3>
      {!policy && !failure && <p>Loading…</p>}
      {policy &&
        GROUPS.map((g) => (
          <fieldset key={`${g.legend}-${saved}`}>
            <legend>{g.legend}</legend>
            {g.fields.map((d) => (
              <Control key={d.path} desc={d} value={get(policy, d.path)} failure={failure} />
            ))}
          </fieldset>
        ))}
      <Failure failure={failure} fields={fields} />
      {saved > 0 && !failure && <p role="status">The policy is saved; it applies from each person's next request.</p>}
      {policy && (
        <button type="submit" disabled={busy}>
          {busy ? "Saving…" : "Save the policy"}
        </button>
      )}
    </form>
  );
}

const COUNT_LABEL: [keyof S["DeletionCounts"], string][] = [
  ["retention_messages", "Messages past retention"],
  ["expired_messages", "Disappearing messages whose lifespan ended"],
  ["recalled_messages", "Server copies of recalled messages"],
  ["attachments", "Attachments"],
  ["conversations", "Conversations with something deleted"],
  ["held_back", "Kept back by a legal hold"],
  ["kept_for_minimum", "Kept for the retention minimum"],
];

function LifecycleForm() {
  const [policy, setPolicy] = useState<S["LifecyclePolicy"] | null>(null);
  const [candidate, setCandidate] = useState<S["LifecyclePolicy"] | null>(null);
  const [preview, setPreview] = useState<{ of: string; counts: S["LifecyclePreview"] } | null>(null);
  const [applied, setApplied] = useState(false);
  const [version, setVersion] = useState(0);
  const { busy, failure, setFailure, run } = useConsoleAction();
  useEffect(() => {
    run(() => result(consoleApi.GET("/api/v1/lifecycle/policy"))).then((r) => r && setPolicy(r.value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const fields = ["retention", "minimum_days", "message_ttl_secs", "max_ttl_secs", "recall_window_secs"];
  const readForm = (form: HTMLFormElement): S["LifecyclePolicy"] => {
    const f = new FormData(form);
    const n = (k: string) => {
      const t = String(f.get(k) ?? "").trim();
      return /^-?\d+$/.test(t) ? Number(t) : NaN;
    };
    const ttl = String(f.get("message_ttl_secs") ?? "").trim();
    return {
      retention: f.get("forever") === "on" ? "forever" : { days: n("retention") },
      minimum_days: n("minimum_days"),
      message_ttl_secs: ttl === "" ? null : n("message_ttl_secs"),
      max_ttl_secs: n("max_ttl_secs"),
      recall_window_secs: n("recall_window_secs"),
    };
  };
  const doPreview = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setApplied(false);
    const c = readForm(e.currentTarget);
    const bad = fields.find((k) => {
      const v = k === "retention" ? (c.retention === "forever" ? 0 : c.retention.days) : c[k as keyof typeof c];
      return typeof v === "number" && Number.isNaN(v);
    });
    if (bad) {
      setFailure({ status: 0, code: "validation", field: bad, message: "this is a whole number" });
      setPreview(null);
      return;
    }
    const r = await run(() => result(consoleApi.POST("/api/v1/lifecycle/preview", { body: c })));
    if (r) {
      setCandidate(c);
      setPreview({ of: JSON.stringify(c), counts: r.value });
    } else setPreview(null);
  };
  const apply = async () => {
    if (!candidate) return;
    const r = await run(() => result(consoleApi.PUT("/api/v1/lifecycle/policy", { body: candidate })));
    if (r) {
      setPolicy(r.value);
      setPreview(null);
      setApplied(true);
      setVersion((v) => v + 1);
    }
  };
  const days = policy && policy.retention !== "forever" ? policy.retention.days : "";
  return (
    <form
      onSubmit={doPreview}
      onChange={() => setPreview(null)}
      className="panel policy"
      aria-labelledby="lifecycle-title"
      noValidate
      key={version}
    >
      <h3 id="lifecycle-title">Retention and lifecycle</h3>
      {!policy && !failure && <p>Loading…</p>}
      {policy && (
        <>
          <fieldset>
            <legend>Retention</legend>
            <Field name="retention" label="Keep messages and attachments for (days)" hint="1 to 36,500, not less than the minimum below." failure={failure}>
              {(p) => <input {...p} defaultValue={days} inputMode="numeric" />}
            </Field>
            <label className="check">
              <input type="checkbox" name="forever" defaultChecked={policy.retention === "forever"} /> Keep them forever (retention
              deletes nothing)
            </label>
            <Field
              name="minimum_days"
              label="Keep every message at least (days)"
              hint="0 to 36,500: whatever lifespans and recalls say, the server keeps its copy this long."
              failure={failure}
            >
              {(p) => <input {...p} defaultValue={policy.minimum_days} inputMode="numeric" />}
            </Field>
          </fieldset>
          <fieldset>
            <legend>Lifespans and recall</legend>
            <Field
              name="message_ttl_secs"
              label="Every message disappears after (seconds)"
              hint="Empty: messages do not disappear unless their sender or conversation says so."
              failure={failure}
            >
              {(p) => <input {...p} defaultValue={policy.message_ttl_secs ?? ""} inputMode="numeric" />}
            </Field>
            <Field name="max_ttl_secs" label="Longest lifespan a sender may choose (seconds)" hint="60 to 31,536,000." failure={failure}>
              {(p) => <input {...p} defaultValue={policy.max_ttl_secs} inputMode="numeric" />}
            </Field>
            <Field
              name="recall_window_secs"
              label="Senders may recall a message for (seconds)"
              hint="0 to 604,800; administrators may recall at any time."
              failure={failure}
            >
              {(p) => <input {...p} defaultValue={policy.recall_window_secs} inputMode="numeric" />}
            </Field>
          </fieldset>
        </>
      )}
      <Failure failure={failure} fields={fields} />
      {applied && <p role="status">The lifecycle policy is applied; the next deletion run follows it.</p>}
      {policy && (
        <button type="submit" disabled={busy}>
          Preview what this deletes
        </button>
      )}
      {preview && <PreviewTable counts={preview.counts} />}
      {preview && (
        <Confirmed label="Apply this policy…" confirm="Apply" danger busy={busy} onConfirm={apply}>
          <p>
            The next deletion run deletes what the preview shows, for good: {preview.counts.would_delete.retention_messages +
              preview.counts.would_delete.expired_messages +
              preview.counts.would_delete.recalled_messages}{" "}
            messages and {preview.counts.would_delete.attachments} attachments. Each run leaves a signed deletion receipt.
          </p>
        </Confirmed>
      )}
    </form>
  );
}

function PreviewTable({ counts }: { counts: S["LifecyclePreview"] }): ReactNode {
  return (
    <table className="preview">
      <caption>What a deletion run would do now</caption>
      <thead>
        <tr>
          <th scope="col">What</th>
          <th scope="col">With this change</th>
          <th scope="col">With the current policy</th>
        </tr>
      </thead>
      <tbody>
        {COUNT_LABEL.map(([k, label]) => (
          <tr key={k} className={counts.would_delete[k] !== counts.current_policy_deletes[k] ? "changed" : undefined}>
            <th scope="row">{label}</th>
            <td>{counts.would_delete[k]}</td>
            <td>{counts.current_policy_deletes[k]}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
