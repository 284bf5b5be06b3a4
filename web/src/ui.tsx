// Pieces every screen uses: the page shell with its focused heading, the
// server's failure shown as an alert, and a form action's busy/failure state.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { encode } from "uqr";
import { onNews, type News } from "./session";
import type { ApiFailure } from "./worker/protocol";

export function Shell({ title, wide, children }: { title: string; wide?: boolean; children: ReactNode }) {
  // The heading takes focus when a screen opens, so a screen reader hears
  // where it is and keyboard users start at the top.
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
  }, [title]);
  useEffect(() => {
    document.title = `${title} · Wardline`;
  }, [title]);
  return (
    <main className={wide ? "wide" : undefined}>
      <h1 tabIndex={-1} ref={heading}>
        {title}
      </h1>
      {children}
    </main>
  );
}

export function Problem({ failure }: { failure: ApiFailure | null }) {
  if (!failure) return null;
  // The server's messages are sentence fragments ("the code is wrong …").
  const text = failure.message.charAt(0).toUpperCase() + failure.message.slice(1);
  return (
    <p role="alert" className="problem">
      {text}
    </p>
  );
}

/** The PIN that opens this browser's store: one field, the failure, Unlock. */
export function PinForm({
  busy,
  failure,
  onPin,
}: {
  busy: boolean;
  failure: ApiFailure | null;
  onPin: (pin: string) => void;
}) {
  return (
    <>
      <p>Type this browser's PIN to open your messages.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onPin(String(new FormData(e.currentTarget).get("pin")));
        }}
      >
        <label htmlFor="pin">PIN</label>
        <input id="pin" name="pin" type="password" autoComplete="current-password" required />
        <Problem failure={failure} />
        <button type="submit" disabled={busy}>
          {busy ? "Unlocking…" : "Unlock"}
        </button>
      </form>
    </>
  );
}

/** A form whose submit runs `action`, shows its failure, and is busy meanwhile. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ApiFailure | null>(null);
  const run = async <T,>(action: () => Promise<{ ok: true; value: T } | { ok: false; error: ApiFailure }>) => {
    setBusy(true);
    setFailure(null);
    const r = await action();
    setBusy(false);
    if (!r.ok) {
      setFailure(r.error);
      return null;
    }
    return r.value;
  };
  return { busy, failure, run };
}

/**
 * A QR code of `text` (ISO/IEC 18004, error correction M, the standard
 * 4-module quiet zone) drawn as one SVG path: no canvas, no data: URL, so the
 * app's CSP stays as strict as it is.
 */
export function QrCode({ text, label }: { text: string; label: string }) {
  const { data, size } = encode(text, { ecc: "M", border: 4 });
  let d = "";
  data.forEach((row, y) =>
    row.forEach((dark, x) => {
      if (dark) d += `M${x} ${y}h1v1h-1z`;
    }),
  );
  return (
    <svg
      xmlns="http://www.w3.org/2000/svg"
      className="qr"
      role="img"
      aria-label={label}
      viewBox={`0 0 ${size} ${size}`}
      shapeRendering="crispEdges"
      width={size * 5}
      height={size * 5}
    >
      <rect width={size} height={size} fill="#fff" />
      <path d={d} fill="#000" />
    </svg>
  );
}

/** The news that most views ask again on: the device's data changed. */
export const onChange = (n: News) => n.event === "changed";

/**
 * Keeps a view fresh: runs `load` now, every `everyMs` (null: never by
 * time) and on each piece of the worker's news `when` picks, until the
 * component goes. `load` and `when` should keep their identity across
 * renders (a `useCallback`, a module constant).
 */
export function useKeptFresh(load: () => void, everyMs: number | null, when: (n: News) => boolean = onChange) {
  useEffect(() => {
    load();
    const timer = everyMs === null ? undefined : setInterval(load, everyMs);
    const off = onNews((n) => {
      if (when(n)) load();
    });
    return () => {
      clearInterval(timer);
      off();
    };
  }, [load, everyMs, when]);
}
