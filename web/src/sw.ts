// Wardline's service worker, served at /sw.js. It does one thing: when a
// push says that something waits (RFC 8030; the server's payload, encrypted
// to this browser, is `{"v":1,"kind":…,"message":<id>}`), it shows a
// notification that names the kind and nothing else — no sender, patient,
// conversation or text — and a click opens Wardline at that message (after
// sign-in or the PIN).
//
// It caches nothing and handles no fetch: the app's files come from the
// server each time, so no copy of anything (and nothing a shared computer
// could keep) lives here. At activation it deletes any cache an older
// version might have left.

/// <reference lib="webworker" />
declare const self: ServiceWorkerGlobalScope;
export {};

type Kind = "message" | "urgent" | "stat" | "waiting" | "unanswered";

/** What the notification says, per kind: the whole of it. */
const TITLES: Record<Kind, string> = {
  message: "New message",
  urgent: "New urgent message",
  stat: "New STAT message",
  waiting: "A message is waiting for your acknowledgement",
  unanswered: "An urgent message you sent went unanswered",
};
const BODY = "Open Wardline to read it.";
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

self.addEventListener("install", () => {
  void self.skipWaiting();
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    (async () => {
      for (const name of await caches.keys()) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("push", (e) => {
  e.waitUntil(onPush(e.data));
});

async function onPush(data: PushMessageData | null) {
  let kind: Kind = "message";
  let message = "";
  try {
    const p = data?.json() as { v?: number; kind?: string; message?: string } | undefined;
    if (p?.v === 1 && p.kind && p.kind in TITLES) kind = p.kind as Kind;
    if (typeof p?.message === "string" && ID.test(p.message)) message = p.message;
  } catch {
    // Unreadable: still say that something came, in the plainest words.
  }
  // A Wardline tab someone is looking at hears of it over its own
  // connection and shows it there.
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  if (windows.some((w) => w.visibilityState === "visible" && w.focused)) return;
  await self.registration.showNotification(TITLES[kind], {
    body: BODY,
    // One notification per kind, replaced (and sounded again) by the next.
    tag: `wardline-${kind}`,
    renotify: true,
    // Urgent and STAT stay on screen until someone acts.
    requireInteraction: kind !== "message",
    data: { message },
  } as NotificationOptions);
}

self.addEventListener("notificationclick", (e) => {
  e.notification.close();
  const message = (e.notification.data as { message?: string } | null)?.message ?? "";
  e.waitUntil(openApp(message));
});

async function openApp(message: string) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((w) => new URL(w.url).origin === self.location.origin);
  // An open Wardline shows what waits across the top of every screen.
  if (open) {
    await open.focus();
    return;
  }
  await self.clients.openWindow(ID.test(message) ? `/#alert=${message}` : "/");
}
