// How times, priorities and messages are written on screen, shared by the
// chat and the clinical screens.
import type { Message, Priority } from "./worker/protocol";

export const PRIORITY_LABEL: Record<Priority, string> = { routine: "Routine", urgent: "Urgent", stat: "STAT" };

export function PriorityBadge({ p }: { p: Priority }) {
  if (p === "routine") return null;
  return <span className={`badge ${p}`}>{PRIORITY_LABEL[p]}</span>;
}

/** A time of day: "14:05". */
export function time(secs: number): string {
  return new Date(secs * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** A time with its date: "1 Dec, 14:05". */
export function day(secs: number): string {
  return new Date(secs * 1000).toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

/** A `<time>` element for Unix seconds, written as `day` or `time` writes it. */
export function When({ at, withDay }: { at: number; withDay?: boolean }) {
  return <time dateTime={new Date(at * 1000).toISOString()}>{withDay ? day(at) : time(at)}</time>;
}

/** The start of a message, to recall it in a reply. */
export function excerpt(m: Message): string {
  if (m.recalled_at) return "a recalled message";
  const text = m.content.text || (m.content.attachments ?? []).map((a) => a.name).join(", ");
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}
