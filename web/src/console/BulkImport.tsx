// Adding many users from a CSV file: read in the browser (Papa Parse), each
// row checked and shown before anything is sent, then created one by one
// with the server's answer per row. Rows without a temporary password get
// a generated one, shown once for the administrator to hand out.
import { useState, type ChangeEvent } from "react";
import Papa from "papaparse";
import { consoleApi, result } from "./client";
import { ROLE_LABEL, ROLES, type Role } from "./Users";

/** The columns, as the file's header row names them. */
const COLUMNS = ["email", "name", "roles", "phone", "temporary_password"] as const;

interface Row {
  line: number;
  email: string;
  name: string;
  roles: Role[];
  phone: string;
  password: string;
  generated: boolean;
  /** What is wrong before sending (empty: ready). */
  problems: string[];
  outcome: { ok: boolean; text: string } | null;
}

/** A role by its API name or its label ("nurse", "Medical assistant"). */
function roleOf(raw: string): Role | null {
  const t = raw.trim().toLowerCase().replace(/[\s-]+/g, "_");
  return ROLES.find((r) => r === t || ROLE_LABEL[r].toLowerCase().replace(/\s+/g, "_") === t) ?? null;
}

/** 16 characters from a 54-letter alphabet without look-alikes (~92 bits). */
function temporaryPassword(): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

function check(raw: Record<string, string>, line: number, seen: Set<string>): Row {
  const problems: string[] = [];
  const email = (raw.email ?? "").trim();
  const name = (raw.name ?? "").trim();
  const roleNames = (raw.roles ?? "").split(/[;|]/).map((r) => r.trim()).filter(Boolean);
  const roles = roleNames.map(roleOf);
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) problems.push("the e-mail address is not valid");
  else if (seen.has(email.toLowerCase())) problems.push("this e-mail address is on an earlier row");
  seen.add(email.toLowerCase());
  if (!name) problems.push("the name is empty");
  if (roleNames.length === 0) problems.push("no role (separate several with ;)");
  roleNames.forEach((n, i) => {
    if (!roles[i]) problems.push(`unknown role “${n}”`);
  });
  const given = (raw.temporary_password ?? "").trim();
  if (given && given.length < 12) problems.push("the temporary password is shorter than 12 characters");
  return {
    line,
    email,
    name,
    roles: roles.filter((r): r is Role => r !== null),
    phone: (raw.phone ?? "").trim(),
    password: given || temporaryPassword(),
    generated: !given,
    problems,
    outcome: null,
  };
}

export function BulkImport({ onDone }: { onDone: () => void }) {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [fileProblem, setFileProblem] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const [finished, setFinished] = useState(false);

  const read = (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    setRows(null);
    setFinished(false);
    setFileProblem(null);
    if (!file) return;
    Papa.parse<Record<string, string>>(file, {
      header: true,
      skipEmptyLines: "greedy",
      transformHeader: (h) => h.trim().toLowerCase().replace(/\s+/g, "_"),
      complete: (parsed) => {
        const fields = parsed.meta.fields ?? [];
        const missing = ["email", "name", "roles"].filter((c) => !fields.includes(c));
        if (missing.length) {
          setFileProblem(`The header row lacks ${missing.join(", ")}. Columns: ${COLUMNS.join(", ")}.`);
          return;
        }
        if (parsed.data.length > 5000) {
          setFileProblem("At most 5,000 rows at a time.");
          return;
        }
        const seen = new Set<string>();
        setRows(parsed.data.map((r, i) => check(r, i + 2, seen)));
      },
      error: (err) => setFileProblem(`The file could not be read: ${err.message}`),
    });
  };

  const ready = rows?.filter((r) => r.problems.length === 0) ?? [];
  const importAll = async () => {
    if (!rows) return;
    setRunning(true);
    const next = [...rows];
    for (let i = 0; i < next.length; i++) {
      const r = next[i];
      if (r.problems.length) continue;
      const answer = await result(
        consoleApi.POST("/api/v1/users", {
          body: {
            email: r.email,
            display_name: r.name,
            phone: r.phone || null,
            roles: r.roles,
            password: r.password,
            password_change_required: true,
          },
        }),
      );
      next[i] = {
        ...r,
        outcome: answer.ok ? { ok: true, text: "Added" } : { ok: false, text: answer.error.message },
      };
      setRows([...next]);
    }
    setRunning(false);
    setFinished(true);
    onDone();
  };

  return (
    <div className="panel" aria-labelledby="import-title">
      <h3 id="import-title">Import users from a CSV file</h3>
      <p className="hint" id="import-hint">
        A header row with the columns <code>email</code>, <code>name</code>, <code>roles</code> (several separated by <code>;</code>),
        and optionally <code>phone</code> and <code>temporary_password</code>. Nothing is sent until you have seen the rows.
      </p>
      <label htmlFor="import-file">CSV file</label>
      <input id="import-file" type="file" accept=".csv,text/csv" aria-describedby="import-hint" onChange={read} />
      {fileProblem && (
        <p role="alert" className="problem">
          {fileProblem}
        </p>
      )}
      {rows && (
        <>
          <p role="status">
            {rows.length} rows: {ready.length} ready, {rows.length - ready.length} with problems (not imported).
          </p>
          <div className="table-scroll">
            <table>
              <caption className="visually-hidden">Rows of the file</caption>
              <thead>
                <tr>
                  <th scope="col">Line</th>
                  <th scope="col">Name</th>
                  <th scope="col">E-mail</th>
                  <th scope="col">Roles</th>
                  <th scope="col">Temporary password</th>
                  <th scope="col">Check</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.line} className={r.problems.length || r.outcome?.ok === false ? "bad" : undefined}>
                    <td>{r.line}</td>
                    <td>{r.name}</td>
                    <td>{r.email}</td>
                    <td>{r.roles.map((x) => ROLE_LABEL[x]).join(", ")}</td>
                    <td>{r.generated ? (r.outcome?.ok ? <code>{r.password}</code> : "generated") : "from the file"}</td>
                    <td>{r.problems.length ? r.problems.join("; ") : (r.outcome?.text ?? "Ready")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {!finished && (
            <button type="button" disabled={running || ready.length === 0} onClick={importAll}>
              {running ? "Importing…" : `Import ${ready.length} users`}
            </button>
          )}
          {finished && (
            <p role="status">
              Done. Generated passwords are shown only now: hand each to its person in person or by phone. They choose their own at first
              sign-in.
            </p>
          )}
        </>
      )}
    </div>
  );
}
