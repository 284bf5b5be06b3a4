// The page's handle on the session worker: requests in, answers out, and
// the news the worker sends unasked (session ended, device wiped, another
// tab took over, data changed).
import type { Answers, Envelope, Outgoing, Reply, Request } from "./worker/protocol";

export type News = Extract<Outgoing, { event: string }>;

const worker = new Worker(new URL("./worker/session.worker.ts", import.meta.url), { type: "module" });
const waiting = new Map<number, (r: Reply<unknown>) => void>();
let nextId = 1;
const listeners = new Set<(news: News) => void>();

worker.onmessage = (e: MessageEvent<Outgoing>) => {
  const m = e.data;
  if ("event" in m) {
    listeners.forEach((l) => l(m));
    return;
  }
  waiting.get(m.id)?.(m.reply);
  waiting.delete(m.id);
};

const DEVICE_ID = "wardline.device";

/**
 * This browser was taken out of the person's devices (a shared computer's
 * sign-out or closed tab, or asked for): the next device set up here gets a
 * new id, and the browser takes no more pushes — its push subscription is
 * dropped and the service worker unregistered (the server already stops
 * pushing to a signed-out device by itself).
 */
export async function forgetDeviceId(): Promise<void> {
  localStorage.removeItem(DEVICE_ID);
  if (!("serviceWorker" in navigator)) return;
  const registration = await navigator.serviceWorker.getRegistration("/");
  if (!registration) return;
  const sub = await registration.pushManager?.getSubscription();
  await sub?.unsubscribe();
  await registration.unregister();
}

/** Tells this page's listeners news the page itself decided (an idle sign-out). */
export function announce(news: News) {
  listeners.forEach((l) => l(news));
}

/** This browser's device id: not a secret; one per browser profile. */
function deviceId(): string {
  const key = DEVICE_ID;
  let id = localStorage.getItem(key);
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem(key, id);
  }
  return id;
}

export function ask<R extends Request>(request: R): Promise<Reply<Answers[R["op"]]>> {
  const id = nextId++;
  const envelope: Envelope = { id, deviceId: deviceId(), request };
  return new Promise((resolve) => {
    waiting.set(id, resolve as (r: Reply<unknown>) => void);
    worker.postMessage(envelope);
  });
}

/** Calls `listener` with each piece of news; returns the unsubscribe. */
export function onNews(listener: (news: News) => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}
