// The page's handle on the session worker: requests in, answers out, and
// the "signed out" news the worker sends when the server ends the session.
import type { Answers, Envelope, Outgoing, Reply, Request } from "./worker/protocol";

const worker = new Worker(new URL("./worker/session.worker.ts", import.meta.url), { type: "module" });
const waiting = new Map<number, (r: Reply<unknown>) => void>();
let nextId = 1;
const signedOutListeners = new Set<(message: string) => void>();

worker.onmessage = (e: MessageEvent<Outgoing>) => {
  const m = e.data;
  if ("event" in m) {
    signedOutListeners.forEach((l) => l(m.message));
    return;
  }
  waiting.get(m.id)?.(m.reply);
  waiting.delete(m.id);
};

/** This browser's device id: not a secret; one per browser profile. */
function deviceId(): string {
  const key = "wardline.device";
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

export function onSignedOut(listener: (message: string) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}
