// Break-glass: every grant of access to a patient's conversations outside
// one's care team, with the reason given, when it began and ended — what
// the compliance officer reviews — and what the officer was told of it.
import { useEffect, useState } from "react";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import { useNames } from "./Audit";
import { At, Failure, Screen, useConsoleAction } from "./parts";

type S = components["schemas"];

export function BreakGlass() {
  const names = useNames();
  const [grants, setGrants] = useState<S["BreakGlassGrant"][] | null>(null);
  const [notices, setNotices] = useState<S["Notification"][]>([]);
  const { failure, run } = useConsoleAction();
  useEffect(() => {
    run(() => result(consoleApi.GET("/api/v1/routing/break-glass"))).then((r) => r && setGrants(r.value.grants));
    result(consoleApi.GET("/api/v1/routing/notifications")).then((r) => r.ok && setNotices(r.value.notifications));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const now = Date.now() / 1000;
  const told = (grant: string) => notices.find((n) => n.kind === "break_glass" && n.detail.includes(grant));
  return (
    <Screen title="Break-glass access">
      <p className="hint">
        Each time someone opened a patient's conversations outside their care team, with the reason they gave. Ask about any reason that
        does not explain the need.
      </p>
      <Failure failure={failure} />
      {grants && grants.length === 0 && <p>Nobody has broken the glass.</p>}
      {grants && grants.length > 0 && (
        <div className="table-scroll">
          <table>
            <caption className="visually-hidden">Break-glass grants, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Who</th>
                <th scope="col">Reason</th>
                <th scope="col">Granted</th>
                <th scope="col">Until</th>
                <th scope="col">You were told</th>
                <th scope="col">Conversation</th>
              </tr>
            </thead>
            <tbody>
              {grants.map((g) => {
                const notice = told(g.id);
                const ended = g.ended_at ?? (g.expires_at <= now ? g.expires_at : null);
                return (
                  <tr key={g.id}>
                    <th scope="row">{names[g.user_id] ?? g.user_id}</th>
                    <td>{g.reason ?? "—"}</td>
                    <td>
                      <At secs={g.granted_at} />
                    </td>
                    <td>{ended ? <At secs={ended} /> : <>still open, until <At secs={g.expires_at} /></>}</td>
                    <td>{notice ? <At secs={notice.created_at} /> : "—"}</td>
                    <td>
                      <code className="hash">{g.conversation_id}</code>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Screen>
  );
}
