// Notifications while Wardline is closed (Web Push): the offer to turn them
// on, and the browser's side of it — the service worker (`/sw.js`, which
// shows "New STAT message" and nothing more), the permission, and the
// PushManager subscription, which the worker hands to the server. Never on a
// shared computer: there nothing of the person may outlive the session.
import { useEffect, useState } from "react";
import { ask } from "./session";

/** Whether this browser can take pushes at all. */
function supported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function bytes(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/**
 * Registers the service worker and subscribes with the server's VAPID key
 * (a subscription made with another key is replaced), then gives the
 * subscription to the server for this device.
 */
async function subscribe(vapidKey: string): Promise<void> {
  const key = bytes(vapidKey);
  const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  let sub = await registration.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  sub ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  const json = sub.toJSON();
  if (!json.endpoint || !json.keys?.p256dh || !json.keys.auth) throw new Error("the browser gave no usable subscription");
  const r = await ask({
    op: "pushSubscribe",
    subscription: { endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } },
  });
  if (!r.ok) throw new Error(r.error.message);
}

type Offer = "hidden" | "ask" | "blocked" | "failed";

/** "Not now": the offer comes back at the next sign-in, not in this tab before. */
const NOT_NOW = "wardline.push.not-now";

/**
 * On a personal computer: asks once whether to notify while Wardline is
 * closed; with permission given, keeps the server's copy of the
 * subscription current at every opening (browsers renew them).
 */
export function PushOffer({ shared }: { shared: boolean }) {
  const [offer, setOffer] = useState<Offer>("hidden");
  const [vapidKey, setVapidKey] = useState<string | null>(null);
  const [problem, setProblem] = useState("");
  useEffect(() => {
    if (shared || !supported()) return;
    let gone = false;
    (async () => {
      const r = await ask({ op: "pushSettings" });
      if (gone || !r.ok || !r.value.vapid_public_key) return;
      const key = r.value.vapid_public_key;
      setVapidKey(key);
      if (Notification.permission === "denied") return setOffer("blocked");
      if (Notification.permission === "default") return setOffer(sessionStorage.getItem(NOT_NOW) ? "hidden" : "ask");
      try {
        await subscribe(key);
      } catch (e) {
        if (gone) return;
        setProblem(e instanceof Error ? e.message : String(e));
        setOffer("failed");
      }
    })();
    return () => {
      gone = true;
    };
  }, [shared]);
  const turnOn = async () => {
    if (!vapidKey) return;
    setProblem("");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") return setOffer(permission === "denied" ? "blocked" : "ask");
    try {
      await subscribe(vapidKey);
      setOffer("hidden");
    } catch (e) {
      setProblem(e instanceof Error ? e.message : String(e));
      setOffer("failed");
    }
  };
  switch (offer) {
    case "hidden":
      return null;
    case "blocked":
      return (
        <p className="note">
          Notifications are blocked for Wardline in this browser's settings: pages and STAT messages reach you only while
          Wardline is open.
        </p>
      );
    case "ask":
    case "failed":
      return (
        <section className="push-offer" aria-labelledby="push-offer-heading">
          <h2 id="push-offer-heading">Pages when Wardline is closed</h2>
          <p>
            Let this browser tell you when a page, a STAT or urgent message, or a message arrives while Wardline is
            closed. A notification says only "New STAT message" — never who sent it, about whom, or what it says.
          </p>
          {offer === "failed" && (
            <p role="alert" className="problem">
              Notifications could not be turned on: {problem}
            </p>
          )}
          <div className="actions">
            <button type="button" className="secondary" onClick={turnOn}>
              Turn on notifications
            </button>
            <button
              type="button"
              className="secondary"
              onClick={() => {
                sessionStorage.setItem(NOT_NOW, "1");
                setOffer("hidden");
              }}
            >
              Not now
            </button>
          </div>
        </section>
      );
  }
}
