// Pieces the console's screens share: a screen's focused heading, a form
// field that shows the server's validation message on itself, a
// confirmation that spells out what an action does, and how a time reads.
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import type { ConsoleFailure } from "./client";

/** A console screen: its heading takes focus when it opens (as `Shell` does). */
export function Screen({ title, children }: { title: string; children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
    document.title = `${title} · Wardline`;
  }, [title]);
  return (
    <section className="console" aria-labelledby="console-title">
      <h2 id="console-title" tabIndex={-1} ref={heading}>
        {title}
      </h2>
      {children}
    </section>
  );
}

function sentence(message: string): string {
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** The failure of a request, unless a field of the form shows it. */
export function Failure({ failure, fields = [] }: { failure: ConsoleFailure | null; fields?: string[] }) {
  if (!failure || (failure.field && fields.includes(failure.field))) return null;
  return (
    <p role="alert" className="problem">
      {sentence(failure.message)}
    </p>
  );
}

/**
 * A labelled input whose error (the server's validation message when
 * `failure.field` is `name`) is shown under it and tied to it, so a screen
 * reader reads it with the field.
 */
export function Field({
  name,
  label,
  hint,
  failure,
  children,
}: {
  name: string;
  label: string;
  hint?: string;
  failure: ConsoleFailure | null;
  /** The control; it is given `id`, `aria-describedby` and `aria-invalid`. */
  children: (props: { id: string; name: string; "aria-describedby"?: string; "aria-invalid"?: boolean }) => ReactNode;
}) {
  // Unique in the page: two forms may both have a `reason`.
  const id = `${useId()}${name.replace(/\./g, "-")}`;
  const error = failure?.field === name ? failure.message : null;
  const described = [hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ");
  return (
    <div className={error ? "field invalid" : "field"}>
      <label htmlFor={id}>{label}</label>
      {children({ id, name, "aria-describedby": described || undefined, "aria-invalid": error ? true : undefined })}
      {hint && (
        <p id={`${id}-hint`} className="hint">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} className="field-error" role="alert">
          {sentence(error)}
        </p>
      )}
    </div>
  );
}

/**
 * An action that asks first: the button opens what it will do, in words,
 * and the person confirms or cancels. `children` says the consequences.
 */
export function Confirmed({
  label,
  confirm,
  danger,
  busy,
  onConfirm,
  children,
}: {
  label: string;
  confirm: string;
  danger?: boolean;
  busy: boolean;
  onConfirm: () => Promise<unknown> | void;
  children: ReactNode;
}) {
  const [open, setOpen] = useState(false);
  if (!open) {
    return (
      <button type="button" className={danger ? "danger" : "secondary"} onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  }
  return (
    <div className="confirm" role="group" aria-label={label}>
      {children}
      <div className="actions">
        <button
          type="button"
          className={danger ? "danger" : undefined}
          disabled={busy}
          onClick={async () => {
            await onConfirm();
            setOpen(false);
          }}
        >
          {confirm}
        </button>
        <button type="button" className="secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** A form's busy state and failure, for console requests. */
export function useConsoleAction() {
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ConsoleFailure | null>(null);
  const run = async <T,>(action: () => Promise<{ ok: true; value: T } | { ok: false; error: ConsoleFailure }>) => {
    setBusy(true);
    setFailure(null);
    const r = await action();
    setBusy(false);
    if (!r.ok) {
      setFailure(r.error);
      return null;
    }
    return { value: r.value };
  };
  return { busy, failure, setFailure, run };
}

/** Unix seconds as a date and time: "8 Dec 2026, 14:05". */
export function dateTime(secs: number): string {
  return new Date(secs * 1000).toLocaleString([], {
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function At({ secs }: { secs: number | null | undefined }) {
  if (secs === null || secs === undefined) return <>—</>;
  return <time dateTime={new Date(secs * 1000).toISOString()}>{dateTime(secs)}</time>;
}

/** A duration in seconds, in the largest whole unit: "15 minutes", "7 days". */
export function duration(secs: number): string {
  const units: [number, string][] = [
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [n, unit] of units) {
    if (secs >= n && secs % n === 0) {
      const k = secs / n;
      return `${k} ${unit}${k === 1 ? "" : "s"}`;
    }
  }
  return `${secs} seconds`;
}
