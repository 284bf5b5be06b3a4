// Analytics: what messaging, clinical routing and patient texting did per
// day over the last week, month or quarter (`GET /api/v1/reports/activity`,
// aggregated by the database). Each chart (Chart.js) has its figures as a
// table under it, for screen readers and for anyone who wants the numbers.
import { useEffect, useMemo, useRef, useState } from "react";
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import { Failure, Screen, useConsoleAction } from "./parts";

Chart.register(BarController, BarElement, CategoryScale, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip);

type S = components["schemas"];
type Series = S["DailySeries"];

/** Okabe–Ito: told apart with the common colour-vision deficiencies. */
const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

function ChartCanvas({ config, label }: { config: ChartConfiguration; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, config);
    return () => chart.destroy();
  }, [config]);
  return (
    <div className="chart">
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}

function DailyChart({
  title,
  days,
  series,
  kind,
}: {
  title: string;
  days: string[];
  series: Series[];
  kind: "bar" | "line";
}) {
  const config = useMemo<ChartConfiguration>(() => ({
    type: kind,
    data: {
      labels: days.map((d) => d.slice(5)),
      datasets: series.map((s, i) => ({
        label: s.name,
        data: s.counts,
        backgroundColor: COLOURS[i % COLOURS.length],
        borderColor: COLOURS[i % COLOURS.length],
        borderWidth: kind === "line" ? 2 : 0,
        pointRadius: days.length > 40 ? 0 : 2,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { stacked: kind === "bar" },
        y: { stacked: kind === "bar", beginAtZero: true, ticks: { precision: 0 } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  }), [days, series, kind]);
  const total = series.reduce((n, s) => n + s.counts.reduce((a, b) => a + b, 0), 0);
  const summary = series.map((s) => `${s.name}: ${s.counts.reduce((a, b) => a + b, 0)}`).join(", ");
  return (
    <figure className="panel">
      <figcaption>
        <h3>{title}</h3>
      </figcaption>
      {series.length === 0 || total === 0 ? (
        <p>Nothing in this period.</p>
      ) : (
        <>
          <ChartCanvas config={config} label={`${title}, totals over the period: ${summary}`} />
          <details>
            <summary>The figures as a table</summary>
            <div className="table-scroll">
              <table>
                <caption className="visually-hidden">{title}</caption>
                <thead>
                  <tr>
                    <th scope="col">Day</th>
                    {series.map((s) => (
                      <th scope="col" key={s.name}>
                        {s.name}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {days.map((d, i) => (
                    <tr key={d}>
                      <th scope="row">{d}</th>
                      {series.map((s) => (
                        <td key={s.name}>{s.counts[i]}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </details>
        </>
      )}
    </figure>
  );
}

/** Seconds as minutes and seconds: "4 min 05 s". */
function minutes(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return "—";
  const m = Math.floor(secs / 60);
  const s = secs % 60;
  return m ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
}

function Responses({ title, rows }: { title: string; rows: S["ResponseSummary"][] }) {
  const config = useMemo<ChartConfiguration>(() => ({
    type: "bar",
    data: {
      labels: rows.map((r) => r.name),
      datasets: [
        { label: "Median to read (min)", data: rows.map((r) => (r.median_read_secs ?? 0) / 60), backgroundColor: COLOURS[5] },
        { label: "Median to acknowledge (min)", data: rows.map((r) => (r.median_ack_secs ?? 0) / 60), backgroundColor: COLOURS[0] },
        { label: "90% acknowledged within (min)", data: rows.map((r) => (r.p90_ack_secs ?? 0) / 60), backgroundColor: COLOURS[1] },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: "y",
      scales: { x: { beginAtZero: true, title: { display: true, text: "minutes" } } },
      plugins: { legend: { position: "bottom" } },
    },
  }), [rows]);
  return (
    <figure className="panel">
      <figcaption>
        <h3>{title}</h3>
      </figcaption>
      {rows.length === 0 ? (
        <p>No urgent, STAT or role-addressed messages in this period.</p>
      ) : (
        <>
          <ChartCanvas config={config} label={`${title}: median and 90th percentile times, in the table below`} />
          <table>
            <caption className="visually-hidden">{title}</caption>
            <thead>
              <tr>
                <th scope="col">Who</th>
                <th scope="col">Messages</th>
                <th scope="col">Read</th>
                <th scope="col">Median to read</th>
                <th scope="col">90% read within</th>
                <th scope="col">Acknowledged</th>
                <th scope="col">Median to acknowledge</th>
                <th scope="col">90% acknowledged within</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.name}>
                  <th scope="row">{r.name}</th>
                  <td>{r.messages}</td>
                  <td>{r.read}</td>
                  <td>{minutes(r.median_read_secs)}</td>
                  <td>{minutes(r.p90_read_secs)}</td>
                  <td>{r.acknowledged}</td>
                  <td>{minutes(r.median_ack_secs)}</td>
                  <td>{minutes(r.p90_ack_secs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </figure>
  );
}

const RANGES: [number, string][] = [
  [7, "Last 7 days"],
  [30, "Last 30 days"],
  [90, "Last 90 days"],
];

export function Analytics() {
  const [days, setDays] = useState(30);
  const [report, setReport] = useState<S["ActivityReport"] | null>(null);
  const { busy, failure, run } = useConsoleAction();
  useEffect(() => {
    // Until the server's now (this computer's clock may be off); from the
    // start of the UTC day `days - 1` days ago.
    const today = Math.floor(Date.now() / 86400000) * 86400;
    const since = today - (days - 1) * 86400;
    run(() => result(consoleApi.GET("/api/v1/reports/activity", { params: { query: { since } } }))).then(
      (r) => r && setReport(r.value),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [days]);
  return (
    <Screen title="Analytics">
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Period">
        <div>
          <label htmlFor="analytics-range">Period</label>
          <select id="analytics-range" value={days} onChange={(e) => setDays(Number(e.target.value))}>
            {RANGES.map(([n, label]) => (
              <option key={n} value={n}>
                {label}
              </option>
            ))}
          </select>
        </div>
      </form>
      <p className="hint">Counts per UTC day. Never a message, a patient or a phone number.</p>
      <Failure failure={failure} />
      {busy && !report && <p>Loading…</p>}
      {report && (
        <div className="charts" aria-busy={busy}>
          <DailyChart title="Messages per day by staff role" days={report.days} series={report.messages_by_role} kind="bar" />
          <DailyChart title="Messages per day by department" days={report.days} series={report.messages_by_department} kind="bar" />
          <Responses title="Response times by clinical role" rows={report.responses_by_role} />
          <Responses title="Response times by department" rows={report.responses_by_department} />
          <DailyChart title="STAT and urgent messages, escalations and unacknowledged" days={report.days} series={report.escalations} kind="line" />
          <DailyChart title="Active users and devices" days={report.days} series={report.active} kind="line" />
          <DailyChart title="Patient texting" days={report.days} series={report.patient_texting} kind="bar" />
        </div>
      )}
    </Screen>
  );
}
