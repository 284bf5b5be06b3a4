// Web Push for this browser's device, inside the worker (which alone holds
// the session token): the server's VAPID key and whether the device is
// subscribed, and handing the browser's subscription to the server. The
// page does the browser side (service worker, permission, PushManager),
// which a dedicated worker cannot reach.
import type { components } from "../api/schema";
import { api, call } from "./api";
import * as device from "./device";

type S = components["schemas"];

/** The server's VAPID key (null when push is off there) and whether this device is subscribed. */
export async function settings(): Promise<S["PushSettings"]> {
  device.open();
  return call(() => api.GET("/api/v1/devices/push"));
}

/** Gives the server this browser's subscription for this device (never on a shared computer). */
export async function subscribe(subscription: S["PushSubscriptionRequest"]): Promise<S["PushSettings"]> {
  device.open();
  if (device.isShared()) throw new Error("a shared computer does not take notifications");
  return call(() => api.PUT("/api/v1/devices/push", { body: subscription }));
}

/** The server forgets this device's subscription. */
export async function unsubscribe(): Promise<S["PushSettings"]> {
  device.open();
  return call(() => api.DELETE("/api/v1/devices/push"));
}
