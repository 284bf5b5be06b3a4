// Legal holds: the register (active first), placing a hold on a user, a
// conversation or a patient with its matter and reason, and releasing one
// with a reason. Held messages are kept whatever retention, lifespans or
// recalls say, until released.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import { useNames } from "./Audit";
import { At, Failure, Field, Screen, useConsoleAction } from "./parts";

type S = components["schemas"];
type Hold = S["LegalHold"];

const SCOPE_LABEL: Record<S["HoldScope"], string> = {
  user: "A person's messages",
  conversation: "A conversation",
  patient: "Everything about a patient",
};

export function LegalHolds() {
  const names = useNames();
  const [holds, setHolds] = useState<Hold[] | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const { failure, run } = useConsoleAction();
  const load = useCallback(async () => {
    const r = await run(() => result(consoleApi.GET("/api/v1/legal-holds")));
    if (r) setHolds(r.value.holds);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    load();
  }, [load]);
  const active = holds?.filter((h) => !h.released_at) ?? [];
  const released = holds?.filter((h) => h.released_at) ?? [];
  const target = (h: Hold) => (h.scope === "user" ? (names[h.target] ?? h.target) : h.target);
  return (
    <Screen title="Legal holds">
      {notice && <p role="status">{notice}</p>}
      <PlaceHold
        names={names}
        onPlaced={(h) => {
          setNotice(`Hold placed on ${target(h)} for “${h.matter}”.`);
          load();
        }}
      />
      <Failure failure={failure} />
      {holds && (
        <section aria-labelledby="active-title">
          <h3 id="active-title">Active holds ({active.length})</h3>
          {active.length === 0 && <p>No hold is active: retention deletes as the policy says.</p>}
          <ul className="holds">
            {active.map((h) => (
              <li key={h.id}>
                <h4>{h.matter}</h4>
                <p>
                  {SCOPE_LABEL[h.scope]}: <strong>{target(h)}</strong>. Placed <At secs={h.placed_at} /> by {names[h.placed_by] ?? h.placed_by}
                  : “{h.reason}”
                </p>
                <ReleaseHold
                  hold={h}
                  onReleased={() => {
                    setNotice(`The hold for “${h.matter}” is released.`);
                    load();
                  }}
                />
              </li>
            ))}
          </ul>
        </section>
      )}
      {released.length > 0 && (
        <section aria-labelledby="released-title">
          <h3 id="released-title">Released holds ({released.length})</h3>
          <table>
            <caption className="visually-hidden">Released holds</caption>
            <thead>
              <tr>
                <th scope="col">Matter</th>
                <th scope="col">On</th>
                <th scope="col">Placed</th>
                <th scope="col">Released</th>
                <th scope="col">Why released</th>
              </tr>
            </thead>
            <tbody>
              {released.map((h) => (
                <tr key={h.id}>
                  <th scope="row">{h.matter}</th>
                  <td>
                    {SCOPE_LABEL[h.scope]}: {target(h)}
                  </td>
                  <td>
                    <At secs={h.placed_at} />
                  </td>
                  <td>
                    <At secs={h.released_at} /> by {h.released_by ? (names[h.released_by] ?? h.released_by) : ""}
                  </td>
                  <td>{h.release_reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </Screen>
  );
}

function PlaceHold({ names, onPlaced }: { names: Record<string, string>; onPlaced: (h: Hold) => void }) {
  const [scope, setScope] = useState<S["HoldScope"]>("patient");
  const { busy, failure, run } = useConsoleAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const r = await run(() =>
      result(
        consoleApi.POST("/api/v1/legal-holds", {
          body: {
            scope,
            target: String(f.get("target")).trim(),
            matter: String(f.get("matter")).trim(),
            reason: String(f.get("reason")).trim(),
          },
        }),
      ),
    );
    if (r) {
      form.reset();
      onPlaced(r.value);
    }
  };
  return (
    <form onSubmit={submit} className="panel" aria-labelledby="place-title" noValidate>
      <h3 id="place-title">Place a hold</h3>
      <fieldset>
        <legend>What to hold</legend>
        {(Object.keys(SCOPE_LABEL) as S["HoldScope"][]).map((s) => (
          <label key={s} className="check">
            <input type="radio" name="scope" value={s} checked={scope === s} onChange={() => setScope(s)} /> {SCOPE_LABEL[s]}
          </label>
        ))}
      </fieldset>
      {scope === "user" ? (
        <Field name="target" label="Person" failure={failure}>
          {(p) => (
            <select {...p} required defaultValue="">
              <option value="" disabled>
                Choose a person
              </option>
              {Object.entries(names)
                .sort(([, a], [, b]) => a.localeCompare(b))
                .map(([id, n]) => (
                  <option key={id} value={id}>
                    {n}
                  </option>
                ))}
            </select>
          )}
        </Field>
      ) : (
        <Field
          name="target"
          label={scope === "patient" ? "Patient reference (as written on conversations, e.g. the MRN)" : "Conversation id"}
          failure={failure}
        >
          {(p) => <input {...p} required autoComplete="off" />}
        </Field>
      )}
      <Field name="matter" label="Matter" hint="A case name or number, 1 to 200 characters." failure={failure}>
        {(p) => <input {...p} required maxLength={200} />}
      </Field>
      <Field name="reason" label="Reason" failure={failure}>
        {(p) => <textarea {...p} required maxLength={2000} rows={2} />}
      </Field>
      <Failure failure={failure} fields={["target", "matter", "reason"]} />
      <button type="submit" disabled={busy}>
        Place the hold
      </button>
    </form>
  );
}

function ReleaseHold({ hold, onReleased }: { hold: Hold; onReleased: () => void }) {
  const [open, setOpen] = useState(false);
  const { busy, failure, run } = useConsoleAction();
  if (!open) {
    return (
      <button type="button" className="secondary" onClick={() => setOpen(true)}>
        Release “{hold.matter}”…
      </button>
    );
  }
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const reason = String(new FormData(e.currentTarget).get("reason")).trim();
    const r = await run(() =>
      result(consoleApi.POST("/api/v1/legal-holds/{id}/release", { params: { path: { id: hold.id } }, body: { reason } })),
    );
    if (r) onReleased();
  };
  return (
    <form onSubmit={submit} className="confirm" aria-label={`Release the hold for ${hold.matter}`} noValidate>
      <p>Once released, what it kept is deleted by the next deletion run if retention says so.</p>
      <Field name="reason" label="Why it is released" failure={failure}>
        {(p) => <input {...p} required maxLength={2000} />}
      </Field>
      <Failure failure={failure} fields={["reason"]} />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Release the hold
        </button>
        <button type="button" className="secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
