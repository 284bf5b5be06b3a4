// Integrity of the audit trail: the latest signed checkpoint, its signature
// checked here (Ed25519, WebCrypto) against the key the server publishes,
// and how to run the offline verification that alone proves the trail whole
// — the console does not pretend to do what only that check can.
import { useEffect, useState } from "react";
import type { components } from "../api/schema";
import { consoleApi, result } from "./client";
import { msTime } from "./Audit";
import { Failure, Screen, useConsoleAction } from "./parts";

type Checkpoint = components["schemas"]["Checkpoint"];

const hex = (h: string): Uint8Array<ArrayBuffer> => new Uint8Array((h.match(/../g) ?? []).map((b) => parseInt(b, 16)));

/** The bytes a checkpoint's signature covers (`checkpoint_message` in wardline-proto). */
function message(c: Checkpoint): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`wardline-audit-checkpoint-v1\n${c.size}\n${c.at_ms}\n${c.root}\n${c.chain_head}\n`);
}

type Check = "valid" | "invalid" | "unsupported";

async function checkSignature(c: Checkpoint): Promise<Check> {
  try {
    const key = await crypto.subtle.importKey("raw", hex(c.public_key), { name: "Ed25519" }, false, ["verify"]);
    return (await crypto.subtle.verify({ name: "Ed25519" }, key, hex(c.signature), message(c))) ? "valid" : "invalid";
  } catch {
    return "unsupported";
  }
}

export function Integrity() {
  const [checkpoint, setCheckpoint] = useState<Checkpoint | null>(null);
  const [none, setNone] = useState(false);
  const [check, setCheck] = useState<Check | null>(null);
  const { failure, run } = useConsoleAction();
  useEffect(() => {
    run(() => result(consoleApi.GET("/api/v1/audit/checkpoints/latest"))).then(async (r) => {
      if (!r) return;
      setCheckpoint(r.value);
      setCheck(await checkSignature(r.value));
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    if (failure?.status === 404) setNone(true);
  }, [failure]);
  return (
    <Screen title="Audit integrity">
      {none ? <p>No checkpoint is signed yet: the server signs one every few minutes while the trail grows.</p> : <Failure failure={failure} />}
      {checkpoint && (
        <section className="panel" aria-labelledby="checkpoint-title">
          <h3 id="checkpoint-title">Latest signed checkpoint</h3>
          <dl className="facts">
            <dt>Covers</dt>
            <dd>the first {checkpoint.size.toLocaleString()} events</dd>
            <dt>Signed</dt>
            <dd>{msTime(checkpoint.at_ms)}</dd>
            <dt>Signature</dt>
            <dd className={`signature ${check ?? ""}`}>
              {check === "valid" && "Valid for the key the server publishes."}
              {check === "invalid" && "Does not match: report this to your security officer now."}
              {check === "unsupported" && "This browser cannot check Ed25519 signatures; use the command below."}
              {check === null && "Checking…"}
            </dd>
            <dt>Signing key</dt>
            <dd>
              <code>{checkpoint.key_id}</code> (<code className="hash">{checkpoint.public_key}</code>)
            </dd>
            <dt>Merkle root (RFC 9162)</dt>
            <dd>
              <code className="hash">{checkpoint.root}</code>
            </dd>
            <dt>Hash chain head</dt>
            <dd>
              <code className="hash">{checkpoint.chain_head}</code>
            </dd>
          </dl>
        </section>
      )}
      <section className="panel" aria-labelledby="verify-title">
        <h3 id="verify-title">Proving the trail is whole</h3>
        <p>
          A signature checked here shows the server signed this checkpoint with the key it publishes. It does not show that no event was
          changed or removed, nor that the key is the one your organisation pinned: that takes the offline verification, run by someone
          other than the server's administrator, with the public key recorded at setup:
        </p>
        <pre>
          <code>
            wardline audit verify --data-dir /var/lib/wardline --state /secure/audit-verified.json --public-key{" "}
            {checkpoint ? `${checkpoint.key_id}=<the key kept at setup>` : "KEY_ID=HEX"}
          </code>
        </pre>
        <p>
          It recomputes every event's hash, the hash chain and the Merkle tree, checks every signed checkpoint and retention purge, and names
          any event modified, deleted, inserted or reordered; it exits 1 if anything is wrong. The state file remembers the last verified
          checkpoint (keep it off the database host, so a rollback of both is caught too); <code>--json</code> gives a report to keep with
          your audit evidence. Compare the key above with the copy kept at setup: if they differ, do not pin the one shown here.
        </p>
      </section>
    </Screen>
  );
}
