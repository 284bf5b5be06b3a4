// "Who accessed this patient's information": the per-patient access report
// on screen, with a print layout (print CSS) that is also how a PDF is made
// (the browser's "Save as PDF").
import { useState, type FormEvent } from "react";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import { actorText, msTime, useNames } from "./Audit";
import { Failure, Screen, useConsoleAction } from "./parts";

type S = components["schemas"];

export function AccessReportScreen() {
  const names = useNames();
  const [report, setReport] = useState<S["AccessReport"] | null>(null);
  const [madeAt, setMadeAt] = useState<number>(0);
  const { busy, failure, run } = useConsoleAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const patient = String(f.get("patient")).trim();
    const ms = (k: string) => {
      const t = String(f.get(k) ?? "");
      return t ? new Date(t).getTime() : undefined;
    };
    const r = await run(() =>
      result(
        consoleApi.GET("/api/v1/audit/patients/{patient_id}/access-report", {
          params: { path: { patient_id: patient }, query: { from_ms: ms("from"), to_ms: ms("to") } },
        }),
      ),
    );
    setReport(r ? r.value : null);
    setMadeAt(Date.now());
  };
  return (
    <Screen title="Patient access report">
      <form className="filters no-print" onSubmit={submit} aria-label="Patient access report">
        <div>
          <label htmlFor="report-patient">Patient (reference or MRN)</label>
          <input id="report-patient" name="patient" required autoComplete="off" />
        </div>
        <div>
          <label htmlFor="report-from">From</label>
          <input id="report-from" name="from" type="date" />
        </div>
        <div>
          <label htmlFor="report-to">Until</label>
          <input id="report-to" name="to" type="date" />
        </div>
        <div className="actions">
          <button type="submit" disabled={busy}>
            Show who accessed it
          </button>
        </div>
      </form>
      <Failure failure={failure} />
      {report && (
        <article className="report" aria-labelledby="report-title">
          <h3 id="report-title">Who accessed the information of patient {report.patient_id}</h3>
          <p>
            {report.from_ms || report.to_ms
              ? `From ${report.from_ms ? msTime(report.from_ms) : "the start of the trail"} until ${report.to_ms ? msTime(report.to_ms) : "now"}.`
              : "The whole audit trail."}{" "}
            Made {msTime(madeAt)} from the tamper-evident audit trail.
          </p>
          <p className="no-print">
            <button type="button" onClick={() => window.print()}>
              Print or save as PDF
            </button>
          </p>
          {report.accessors.length === 0 ? (
            <p>Nobody accessed this patient's information in this period.</p>
          ) : (
            <>
              <table>
                <caption>Per person</caption>
                <thead>
                  <tr>
                    <th scope="col">Who</th>
                    <th scope="col">Events</th>
                    <th scope="col">First</th>
                    <th scope="col">Last</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {report.accessors.map((a, i) => (
                    <tr key={i}>
                      <th scope="row">{actorText({ actor_kind: a.actor_kind, actor_id: a.actor_id } as S["AuditEvent"], names)}</th>
                      <td>{a.events}</td>
                      <td>{msTime(a.first_ms)}</td>
                      <td>{msTime(a.last_ms)}</td>
                      <td>{a.actions.join(", ")}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <table>
                <caption>Every event, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">When</th>
                    <th scope="col">Who</th>
                    <th scope="col">Action</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {report.events.map((e) => (
                    <tr key={e.seq}>
                      <td>{e.seq}</td>
                      <td>{msTime(e.at_ms)}</td>
                      <td>{actorText(e, names)}</td>
                      <td>{e.action}</td>
                      <td>{e.outcome}</td>
                      <td>{e.reason ?? ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </article>
      )}
    </Screen>
  );
}
