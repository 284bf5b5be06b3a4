// The device's local store in IndexedDB: one record per device, holding its
// state sealed by the wasm core (AES-256-GCM under a key from Argon2id of the
// PIN, bound to the record's own key). Nothing in IndexedDB is readable
// without the PIN; the format is versioned (`format`), and each version has a
// fixture the core's tests open (crates/wardline-client-wasm/tests/fixtures).

const DB = "wardline";
const DEVICES = "devices";

/** A device's stored record. */
export interface DeviceRecord {
  /** Record format (the core's STORE_FORMAT). */
  format: number;
  user: string;
  /** `WLS1 ‖ salt ‖ AES-256-GCM(state)`, associated data `wardline-web/v1/devices/<id>`. */
  sealed: Uint8Array;
  /** Unix milliseconds, device clock. */
  savedAt: number;
  /**
   * The signed-in session (`{ token, session }`), sealed by the core under
   * the same key, associated data `wardline-web/v1/sessions/<id>`: a reload
   * resumes it with the PIN. Absent once signed out or the session ended.
   */
  session?: Uint8Array;
  /** Set up on a shared computer: erased, and the device removed, at sign-out or the idle limit. */
  shared?: boolean;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => {
      if (!r.result.objectStoreNames.contains(DEVICES)) r.result.createObjectStore(DEVICES);
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

let db: Promise<IDBDatabase> | null = null;
function database(): Promise<IDBDatabase> {
  db ??= open();
  return db;
}

/**
 * Whether this origin has the database at all: asking must not create it
 * (after a shared computer's sign-out there is none, and looking at the
 * sign-in screen must not leave an empty one behind).
 */
async function exists(): Promise<boolean> {
  if (db) return true;
  const all = await indexedDB.databases?.();
  return all === undefined || all.some((d) => d.name === DB);
}

export async function load(device: string): Promise<DeviceRecord | undefined> {
  if (!(await exists())) return undefined;
  const d = await database();
  return new Promise((resolve, reject) => {
    const r = d.transaction(DEVICES, "readonly").objectStore(DEVICES).get(device);
    r.onsuccess = () => resolve(r.result as DeviceRecord | undefined);
    r.onerror = () => reject(r.error);
  });
}

/**
 * Writes the record and resolves once the transaction is committed to disk
 * ("strict" durability): callers acknowledge to the server only after this.
 */
export async function save(device: string, record: DeviceRecord): Promise<void> {
  const d = await database();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(DEVICES, "readwrite", { durability: "strict" });
    tx.objectStore(DEVICES).put(record, device);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** Drops the saved session from a device's record (signed out, or the session ended). */
export async function forgetSession(device: string): Promise<void> {
  const record = await load(device);
  if (!record?.session) return;
  delete record.session;
  await save(device, record);
}

/** Erases every device's record: a wiped device keeps nothing. */
export async function eraseAll(): Promise<void> {
  if (db) {
    (await db).close();
    db = null;
  }
  await new Promise<void>((resolve, reject) => {
    const r = indexedDB.deleteDatabase(DB);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    // Another tab still has it open: it is deleted once that tab lets go.
    r.onblocked = () => resolve();
  });
}
