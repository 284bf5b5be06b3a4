// The administration and compliance console: its screens, each offered only
// to someone whose role has the permission it needs (the server refuses the
// others anyway). Which screen is open lives in the address (`#console/…`),
// so a reload or the back button keeps it.
import { useEffect, useState } from "react";
import type { components } from "../api/schema";
import { Analytics } from "./Analytics";
import { AuditSearch } from "./Audit";
import { BreakGlass } from "./BreakGlass";
import { AccessReportScreen } from "./AccessReport";
import { Integrity } from "./Integrity";
import { LegalHolds } from "./LegalHolds";
import { Policies } from "./Policies";
import { Users } from "./Users";

export type Permission = components["schemas"]["Permission"];

export type ScreenId = "users" | "policies" | "analytics" | "audit" | "access" | "integrity" | "holds" | "break-glass";

interface Screen {
  id: ScreenId;
  label: string;
  /** Shown to a role with any of these. */
  needs: Permission[];
}

const SCREENS: Screen[] = [
  { id: "users", label: "Users", needs: ["users_manage", "sessions_read", "devices_manage"] },
  { id: "policies", label: "Policies", needs: ["org_policy_manage", "lifecycle_manage"] },
  { id: "analytics", label: "Analytics", needs: ["routing_reports"] },
  { id: "audit", label: "Audit trail", needs: ["audit_read"] },
  { id: "access", label: "Patient access report", needs: ["audit_read"] },
  { id: "integrity", label: "Audit integrity", needs: ["audit_read"] },
  { id: "holds", label: "Legal holds", needs: ["legal_hold_manage"] },
  { id: "break-glass", label: "Break-glass", needs: ["break_glass_review"] },
];

/** The console screens this person's permissions open. */
export function screensFor(permissions: Permission[]): Screen[] {
  return SCREENS.filter((s) => s.needs.some((p) => permissions.includes(p)));
}

function fromHash(allowed: Screen[]): ScreenId | null {
  const m = /^#console\/([a-z-]+)$/.exec(location.hash);
  const id = m?.[1] as ScreenId | undefined;
  return allowed.some((s) => s.id === id) ? (id ?? null) : null;
}

/** The open screen (null: messages), kept in the address. */
export function useScreen(allowed: Screen[]): [ScreenId | null, (id: ScreenId | null) => void] {
  const [screen, setScreen] = useState<ScreenId | null>(() => fromHash(allowed));
  useEffect(() => {
    const onHash = () => setScreen(fromHash(allowed));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, [allowed]);
  const go = (id: ScreenId | null) => {
    if (id) location.hash = `console/${id}`;
    else history.pushState(null, "", location.pathname);
    setScreen(id);
  };
  return [screen, go];
}

export function ConsoleNav({
  screens,
  screen,
  onScreen,
}: {
  screens: Screen[];
  screen: ScreenId | null;
  onScreen: (id: ScreenId | null) => void;
}) {
  return (
    <nav aria-label="Wardline" className="console-nav">
      <ul>
        <li>
          <a href="#" aria-current={screen === null ? "page" : undefined} onClick={(e) => {
            e.preventDefault();
            onScreen(null);
          }}>
            Messages
          </a>
        </li>
        {screens.map((s) => (
          <li key={s.id}>
            <a
              href={`#console/${s.id}`}
              aria-current={screen === s.id ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                onScreen(s.id);
              }}
            >
              {s.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

export function ConsoleScreen({ screen, permissions, me }: { screen: ScreenId; permissions: Permission[]; me: string }) {
  switch (screen) {
    case "users":
      return <Users permissions={permissions} me={me} />;
    case "policies":
      return <Policies permissions={permissions} />;
    case "analytics":
      return <Analytics />;
    case "audit":
      return <AuditSearch />;
    case "access":
      return <AccessReportScreen />;
    case "integrity":
      return <Integrity />;
    case "holds":
      return <LegalHolds />;
    case "break-glass":
      return <BreakGlass />;
  }
}
