// This browser's device and the chat on it: choosing a PIN on first use,
// unlocking, the idle lock, one tab at a time, then conversations and
// messages. Messages are decrypted in the worker; the page shows what the
// worker hands it and keeps nothing itself.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { PinForm, Problem, useAction } from "./ui";
import { announce, ask, forgetDeviceId, onNews } from "./session";
import { day, excerpt, PriorityBadge, time } from "./format";
import {
  AcknowledgeBar,
  AwaitingBanner,
  BreakGlassBanner,
  DirectoryPanel,
  EscalationLadder,
  PageForm,
  PatientPanel,
  PresenceControl,
  RecallButton,
  useAlertLink,
  RecallOutcome,
  SearchResults,
} from "./Clinical";
import { PatientReplies, PatientsPanel } from "./Patients";
import { PushOffer } from "./Notifications";
import type {
  Attachment,
  ConversationSummary,
  DeviceState,
  EscalationView,
  Message,
  RecallView,
  MessageView,
  Priority,
  ReceiptView,
  Reply,
} from "./worker/protocol";

/** A name for this browser in the user's device list. */
function browserName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom/.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Windows/.test(ua) ? "Windows" : /Mac OS/.test(ua) ? "macOS" : /Android/.test(ua) ? "Android" : /Linux/.test(ua) ? "Linux" : /iPhone|iPad/.test(ua) ? "iOS" : "";
  return os ? `${browser} on ${os}` : browser;
}

export function DeviceArea({ me }: { me: string }) {
  const [device, setDevice] = useState<DeviceState | null>(null);
  const [newDevices, setNewDevices] = useState<string[]>([]);
  const { busy, failure, run } = useAction();

  const refresh = useCallback(() => {
    run(() => ask({ op: "deviceState" })).then((d) => d && setDevice(d));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    refresh();
    return onNews((n) => {
      if (n.event === "elsewhere") setDevice((d) => (d ? { ...d, step: "elsewhere" } : d));
      if (n.event === "connection") setDevice((d) => (d ? { ...d, offlineSince: n.offlineSince } : d));
      if (n.event === "new_device") setNewDevices((names) => [...names, n.name]);
    });
  }, [refresh]);

  // The idle lock: unattended this long, the device closes and asks for the PIN.
  useEffect(() => {
    if (device?.step !== "open" || !device.lockAfterIdleSecs) return;
    const limit = device.lockAfterIdleSecs * 1000;
    let timer = setTimeout(lock, limit);
    function lock() {
      // A shared computer keeps nothing past the idle limit: signed out,
      // this browser removed from the person's devices and erased.
      if (device?.shared) {
        ask({ op: "logout", remove: true }).then((r) => {
          if (r.ok && r.value.removed) void forgetDeviceId();
          announce({ event: "signed_out", message: "Signed out after a while without use: this shared computer keeps nothing of yours." });
        });
        return;
      }
      ask({ op: "lock" }).then((r) => r.ok && setDevice(r.value));
    }
    const activity = () => {
      clearTimeout(timer);
      timer = setTimeout(lock, limit);
    };
    const events = ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"];
    events.forEach((e) => window.addEventListener(e, activity, { passive: true }));
    return () => {
      clearTimeout(timer);
      events.forEach((e) => window.removeEventListener(e, activity));
    };
  }, [device?.step, device?.lockAfterIdleSecs, device?.shared]);

  if (!device) return <Problem failure={failure} />;

  const choosePin = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const pin = String(f.get("pin"));
    const next = await run(async () => {
      if (pin !== String(f.get("pin2"))) {
        return { ok: false, error: { status: 0, code: "validation", message: "The two PINs differ." } };
      }
      return ask({ op: "createDevice", pin, name: browserName() });
    });
    if (next) setDevice(next);
  };

  switch (device.step) {
    case "new":
      return (
        <section aria-labelledby="pin-heading">
          <h2 id="pin-heading">Choose a PIN for this browser</h2>
          <p>
            Your messages are kept on this computer, encrypted. The PIN opens them here; it never leaves this browser.
            {device.minPin > 0 && ` Your organisation asks for at least ${device.minPin} characters.`}
          </p>
          <form onSubmit={choosePin}>
            <label htmlFor="pin">PIN</label>
            <input id="pin" name="pin" type="password" autoComplete="new-password" minLength={device.minPin} required />
            <label htmlFor="pin2">PIN again</label>
            <input id="pin2" name="pin2" type="password" autoComplete="new-password" required />
            <Problem failure={failure} />
            <button type="submit" disabled={busy}>
              {busy ? "Setting up…" : "Set up this browser"}
            </button>
          </form>
        </section>
      );
    case "locked":
      return (
        <section aria-labelledby="unlock-heading">
          <h2 id="unlock-heading">Unlock</h2>
          <PinForm
            busy={busy}
            failure={failure}
            onPin={(pin) => run(() => ask({ op: "unlock", pin })).then((d) => d && setDevice(d))}
          />
        </section>
      );
    case "elsewhere":
      return (
        <section aria-labelledby="elsewhere-heading">
          <h2 id="elsewhere-heading">Open in another tab</h2>
          <p>
            Wardline is open in another tab of this browser. One tab at a time holds your messages, so that they stay in
            order.
          </p>
          <Problem failure={failure} />
          <button
            type="button"
            disabled={busy}
            onClick={() => run(() => ask({ op: "takeOver" })).then((d) => d && setDevice(d))}
          >
            Use Wardline in this tab
          </button>
        </section>
      );
    case "open":
      return (
        <>
          {device.shared && (
            <p className="note">
              Shared computer: signing out, or leaving it unused, removes this browser from your devices and erases
              everything Wardline kept in it.
            </p>
          )}
          <PushOffer shared={device.shared} />
          {device.offlineSince !== null && (
            <p className="offline" role="status">
              Offline: showing this browser's copy
              {device.offlineSince > 0 && ` (the server last answered ${day(device.offlineSince)})`}. What you send waits
              here and goes, in order, when the connection is back.
            </p>
          )}
          {newDevices.length > 0 && (
            <div className="new-device" role="status">
              <p>
                A new device was added to your account: {newDevices.join(", ")}. If you did not add it, sign out and tell
                your administrator at once.
              </p>
              <button type="button" className="secondary small" onClick={() => setNewDevices([])}>
                Dismiss
              </button>
            </div>
          )}
          <ChatScreen me={me} allowCopy={device.allowCopy} allowForwarding={device.allowForwarding} />
        </>
      );
  }
}

/** Messages of a thread shown at first, and added by "Show earlier messages". */
const PAGE = 100;

/** Lifespans offered for a disappearing message or a conversation (seconds, label). */
const LIFESPANS: [number, string][] = [
  [300, "5 minutes"],
  [3600, "1 hour"],
  [8 * 3600, "8 hours"],
  [86_400, "1 day"],
  [7 * 86_400, "7 days"],
];

function lifespan(secs: number): string {
  return LIFESPANS.find(([s]) => s === secs)?.[1] ?? (secs % 3600 === 0 ? `${secs / 3600} hours` : `${Math.round(secs / 60)} minutes`);
}

/** How often the open conversation asks again what can still change (receipts, escalations), ms. */
const OPEN_POLL_MS = 5000;

/**
 * Asks now and every few seconds while this tab is in front; `apply` takes
 * each answer that comes before the returned stop is called (an effect's
 * cleanup).
 */
function pollWhileShown<T>(fetch: () => Promise<Reply<T>>, apply: (v: T) => void): () => void {
  let live = true;
  const poll = async () => {
    if (document.visibilityState !== "visible") return;
    const r = await fetch();
    if (live && r.ok) apply(r.value);
  };
  poll();
  const timer = setInterval(poll, OPEN_POLL_MS);
  return () => {
    live = false;
    clearInterval(timer);
  };
}

/** Urgent messages of the open thread whose escalation is followed (the latest). */
const ESCALATIONS_SHOWN = 20;

function ChatScreen({ me, allowCopy, allowForwarding }: { me: string; allowCopy: boolean; allowForwarding: boolean }) {
  const [list, setList] = useState<ConversationSummary[]>([]);
  const [names, setNames] = useState<Record<string, string>>({});
  const [selected, setSelected] = useState<string | null>(null);
  /** What the main pane shows instead of a conversation. */
  const [panel, setPanel] = useState<
    null | "new" | "page" | "directory" | "patient" | { patients: string | null } | { search: string; n: number }
  >(null);
  /** What a page to a role said about who it reached, by conversation. */
  const [notices, setNotices] = useState<Record<string, string>>({});
  /** A message to open the conversation at (from search or an alert). */
  const [focus, setFocus] = useState<{ message: string; after: number } | null>(null);
  // The chat closes with the device: decrypted attachments leave with it.
  useEffect(() => forgetAttachments, []);

  const load = useCallback(async () => {
    const r = await ask({ op: "conversations" });
    if (r.ok) setList(r.value);
  }, []);
  useEffect(() => {
    load();
    ask({ op: "colleagues" }).then((r) => r.ok && setNames(Object.fromEntries(r.value.map((c) => [c.id, c.name]))));
    return onNews((n) => {
      if (n.event === "changed") load();
    });
  }, [load]);

  const titleOf = (c: ConversationSummary) =>
    c.title ?? (c.members.filter((m) => m !== me).map((m) => names[m] ?? "A colleague").join(", ") || "Conversation");

  const current = list.find((c) => c.id === selected) ?? null;
  const titleById = (id: string) => {
    const c = list.find((x) => x.id === id);
    return c ? titleOf(c) : "a conversation";
  };
  const openAt = (conversation: string, message: string | null, after = 0) => {
    setPanel(null);
    setFocus(message ? { message, after } : null);
    setSelected(conversation);
  };
  const messageColleague = async (user: string) => {
    const direct = list.find((c) => c.kind === "direct" && c.members.includes(user));
    if (direct) return openAt(direct.id, null);
    const r = await ask({ op: "startConversation", conversation: { members: [user], title: "", patientRef: "" } });
    if (r.ok) {
      await load();
      openAt(r.value, null);
    }
  };
  const linkMissing = useAlertLink(openAt);
  return (
    <>
    {linkMissing && (
      <p className="note" role="status">
        The message your text message pointed to is not on this browser: it may have been sent before this browser
        became one of your devices. Open Wardline where you read it before.
      </p>
    )}
    <AwaitingBanner titleOf={titleById} onOpen={(c, m) => openAt(c, m)} />
    <BreakGlassBanner titleOf={titleById} />
    <PatientReplies onOpen={(patient) => setPanel({ patients: patient })} />
    <div className="chat">
      <nav aria-label="Conversations" className="conversations">
        <PresenceControl />
        <form
          role="search"
          className="search"
          onSubmit={(e) => {
            e.preventDefault();
            const q = String(new FormData(e.currentTarget).get("q") ?? "").trim();
            // Each search runs anew (the history may have grown since).
            if (q) setPanel({ search: q, n: Date.now() });
          }}
        >
          <label htmlFor="search-q">Search messages</label>
          <input id="search-q" name="q" type="search" maxLength={200} />
          <button type="submit" className="secondary small">
            Search
          </button>
        </form>
        <h2>Conversations</h2>
        <div className="actions">
          <button type="button" onClick={() => setPanel("new")}>
            New conversation
          </button>
          <button type="button" onClick={() => setPanel("page")}>
            Page a role
          </button>
          <button type="button" className="secondary" onClick={() => setPanel("directory")}>
            Directory
          </button>
          <button type="button" className="secondary" onClick={() => setPanel("patient")}>
            Open a patient
          </button>
          <button type="button" className="secondary" onClick={() => setPanel({ patients: null })}>
            Texting patients
          </button>
        </div>
        {list.length === 0 && <p>No conversations yet.</p>}
        <ul>
          {list.map((c) => (
            <li key={c.id}>
              <button
                type="button"
                className="conversation"
                aria-current={c.id === selected ? "true" : undefined}
                onClick={() => openAt(c.id, null)}
              >
                <span className="title">{titleOf(c)}</span>
                {c.patient_ref && <span className="patient">Patient {c.patient_ref}</span>}
                {c.unread > 0 && (
                  <span className="unread">
                    <PriorityBadge p={c.unread_priority} /> {c.unread} unread
                  </span>
                )}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      {panel === "new" ? (
        <NewConversationForm
          names={names}
          onDone={(id) => {
            setPanel(null);
            if (id) openAt(id, null);
            load();
          }}
        />
      ) : panel === "page" ? (
        <PageForm
          onDone={(r) => {
            setPanel(null);
            if (!r) return;
            setNotices((n) => ({
              ...n,
              [r.conversation]: `Paged ${r.role}: ${r.notice}`,
            }));
            load();
            openAt(r.conversation, null);
          }}
        />
      ) : panel === "directory" ? (
        <DirectoryPanel me={me} onMessage={messageColleague} onClose={() => setPanel(null)} />
      ) : panel === "patient" ? (
        <PatientPanel titleOf={titleById} onOpen={(c) => openAt(c, null)} onClose={() => setPanel(null)} />
      ) : panel && "patients" in panel ? (
        <PatientsPanel
          key={panel.patients ?? ""}
          open={panel.patients}
          onOpen={(patient) => setPanel({ patients: patient })}
          onClose={() => setPanel(null)}
        />
      ) : panel ? (
        <SearchResults
          key={panel.n}
          query={panel.search}
          titleOf={titleById}
          onOpen={(c, m, after) => openAt(c, m, after)}
          onClose={() => setPanel(null)}
        />
      ) : current ? (
        <ConversationView
          key={`${current.id}/${focus?.message ?? ""}`}
          c={current}
          notice={notices[current.id] ?? null}
          focus={focus}
          title={titleOf(current)}
          me={me}
          names={names}
          allowCopy={allowCopy}
          forwardTo={
            allowForwarding
              ? list
                  .filter((t) => t.id !== current.id && t.joined && !t.closed)
                  .map((t) => ({ id: t.id, title: titleOf(t), patientRef: t.patient_ref }))
              : null
          }
          onShown={load}
        />
      ) : (
        <section className="conversation-view" aria-label="No conversation open">
          <p>Choose a conversation, or start one.</p>
        </section>
      )}
    </div>
    </>
  );
}

function NewConversationForm({ names, onDone }: { names: Record<string, string>; onDone: (id: string | null) => void }) {
  const { busy, failure, run } = useAction();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const members = f.getAll("member").map(String);
    const id = await run(async () => {
      if (members.length === 0) {
        return { ok: false, error: { status: 0, code: "validation", message: "Choose at least one colleague." } };
      }
      return ask({
        op: "startConversation",
        conversation: { members, title: String(f.get("title") ?? ""), patientRef: String(f.get("patient") ?? "") },
      });
    });
    if (id) onDone(id);
  };
  return (
    <section className="conversation-view" aria-labelledby="new-heading">
      <h2 id="new-heading">New conversation</h2>
      <form onSubmit={submit}>
        <fieldset>
          <legend>With</legend>
          {Object.entries(names)
            .sort((a, b) => a[1].localeCompare(b[1]))
            .map(([id, name]) => (
              <label key={id} className="check">
                <input type="checkbox" name="member" value={id} /> {name}
              </label>
            ))}
        </fieldset>
        <label htmlFor="title">Title (for a group)</label>
        <input id="title" name="title" maxLength={200} />
        <label htmlFor="patient">Patient reference (makes it a patient thread)</label>
        <input id="patient" name="patient" maxLength={64} />
        <Problem failure={failure} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            {busy ? "Starting…" : "Start"}
          </button>
          <button type="button" className="secondary" onClick={() => onDone(null)}>
            Cancel
          </button>
        </div>
      </form>
    </section>
  );
}

function ConversationView({
  c,
  notice,
  focus,
  title,
  me,
  names,
  allowCopy,
  forwardTo,
  onShown,
}: {
  c: ConversationSummary;
  /** Who a page to a role reached, and why. */
  notice: string | null;
  /** Open at this message (`after`: how many follow it in the thread). */
  focus: { message: string; after: number } | null;
  title: string;
  me: string;
  names: Record<string, string>;
  allowCopy: boolean;
  /** Where a message may be forwarded (null: the policy's `allow_forwarding` is off). */
  forwardTo: ForwardTarget[] | null;
  onShown: () => void;
}) {
  const [view, setView] = useState<MessageView>({ messages: [], earlier: 0, unsent: [] });
  // A long thread comes a page at a time: the latest ones, then earlier on request.
  const [limit, setLimit] = useState(focus ? Math.max(PAGE, focus.after + 1 + PAGE / 2) : PAGE);
  const [receipts, setReceipts] = useState<Record<string, ReceiptView>>({});
  const { busy, failure, run } = useAction();
  const heading = useRef<HTMLHeadingElement>(null);
  const end = useRef<HTMLLIElement>(null);
  const list = useRef<HTMLOListElement>(null);

  const load = useCallback(async () => {
    const r = await ask({ op: "messages", conversation: c.id, limit });
    if (r.ok) {
      setView(r.value);
      onShown();
    }
  }, [c.id, onShown, limit]);
  useEffect(() => {
    load();
    heading.current?.focus();
    return onNews((n) => {
      if (n.event === "changed") load();
    });
  }, [load]);
  // To the newest message when one comes (not when earlier ones are
  // shown). A block body: an effect's return value is its cleanup, and
  // browsers with promise-returning scroll methods return a Promise here.
  const newest = view.messages.length ? view.messages[view.messages.length - 1].id : null;
  const focused = useRef(false);
  useEffect(() => {
    // Opened at a message (search, an alert): there, once, not at the end.
    const at = focus && !focused.current ? document.getElementById(`message-${focus.message}`) : null;
    if (at) {
      focused.current = true;
      at.scrollIntoView({ block: "center" });
      at.focus();
      return;
    }
    if (focus && !focused.current) return;
    end.current?.scrollIntoView({ block: "end" });
  }, [newest, view.unsent.length, focus]);

  // Urgent and STAT messages here: for mine, the escalation ladder as it
  // happens; for others', acknowledgement. Asked again on news and while open.
  const [escalations, setEscalations] = useState<Record<string, EscalationView>>({});
  /** What my recalls here found (who had read the message), shown where it was. */
  const [recalls, setRecalls] = useState<Record<string, RecallView>>({});
  useEffect(() => {
    const urgent = view.messages.filter((m) => m.priority !== "routine" && !m.recalled_at).map((m) => m.id).slice(-ESCALATIONS_SHOWN);
    if (urgent.length === 0) return;
    return pollWhileShown(() => ask({ op: "escalations", conversation: c.id, messages: urgent }), setEscalations);
  }, [view, c.id]);

  // Read receipts mean "shown": a message from someone else counts as read
  // once it is on screen (half of it, or a screenful of a long one) while
  // this tab is in front — not when it merely arrived.
  useEffect(() => {
    const onScreen = new Set<string>();
    const report = () => {
      if (document.visibilityState === "visible" && onScreen.size) {
        ask({ op: "markShown", conversation: c.id, messages: [...onScreen] });
      }
    };
    const seen = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const id = (e.target as HTMLElement).dataset.id!;
          const shown = e.intersectionRatio >= 0.5 || e.intersectionRect.height >= (e.rootBounds?.height ?? 0) / 2;
          if (e.isIntersecting && shown) onScreen.add(id);
          else onScreen.delete(id);
        }
        report();
      },
      { threshold: [0, 0.5, 1] },
    );
    list.current?.querySelectorAll<HTMLElement>("li.theirs[data-id]").forEach((li) => seen.observe(li));
    document.addEventListener("visibilitychange", report);
    return () => {
      seen.disconnect();
      document.removeEventListener("visibilitychange", report);
    };
  }, [view, c.id]);

  // Where my latest messages stand with the others: asked again while the
  // conversation is open and in front (the worker fetches only what can
  // still change).
  useEffect(() => {
    const mine = view.messages.filter((m) => m.mine && !m.recalled_at).map((m) => m.id).slice(-RECEIPTS_SHOWN);
    if (mine.length === 0) return;
    return pollWhileShown(() => ask({ op: "receipts", conversation: c.id, messages: mine }), setReceipts);
  }, [view, c.id]);

  // Replies find what they answer here (not by a search per message).
  const byId = useMemo(() => new Map(view.messages.map((m) => [m.id, m])), [view]);
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [clips, setClips] = useState<File[]>([]);
  const composer = useRef<HTMLTextAreaElement>(null);
  const startReply = useCallback((m: Message) => {
    setReplyTo(m);
    composer.current?.focus();
  }, []);
  const [forwarding, setForwarding] = useState<Message | null>(null);
  const [forwarded, setForwarded] = useState<string | null>(null);
  const startForward = useCallback((m: Message) => {
    setForwarded(null);
    setForwarding(m);
  }, []);

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const text = String(f.get("text")).trim();
    const files = [...(f.getAll("files") as File[]).filter((x) => x.size > 0 || x.name), ...clips];
    if (!text && files.length === 0) return;
    const id = await run(() =>
      ask({
        op: "send",
        conversation: c.id,
        text,
        priority: String(f.get("priority")) as Priority,
        replyTo: replyTo?.id ?? null,
        files,
        ttlSecs: Number(f.get("ttl")) || null,
      }),
    );
    if (id) {
      form.reset();
      setReplyTo(null);
      setClips([]);
      load();
    }
  };

  return (
    <section className="conversation-view" aria-labelledby="conversation-heading">
      <h2 id="conversation-heading" tabIndex={-1} ref={heading}>
        {title}
      </h2>
      {c.patient_ref && <p className="patient">Patient {c.patient_ref}</p>}
      {notice && (
        <p className="page-notice" role="status">
          {notice}
        </p>
      )}
      {!c.joined && !c.closed && (
        <p role="status">Waiting to be added to this conversation's encryption by a member's device.</p>
      )}
      {c.closed && <p role="status">You are no longer in this conversation.</p>}
      {c.receipts_mandatory && <p className="note">Read receipts are always shown in this conversation.</p>}
      {c.lifespan && (
        <p className="note">Messages here disappear {lifespan(c.lifespan)} after they are sent, from every device.</p>
      )}
      {!c.closed && <Members c={c} me={me} names={names} />}
      {!c.closed && c.joined && <LifespanForm c={c} />}
      {/* A live log (new messages are announced), holding a list. */}
      {/* The organisation's allow_copy: off, message text cannot be selected or copied here. */}
      <div
        role="log"
        aria-label="Messages"
        className={allowCopy ? undefined : "no-copy"}
        onCopy={allowCopy ? undefined : (e) => e.preventDefault()}
        onCut={allowCopy ? undefined : (e) => e.preventDefault()}
      >
      {view.earlier > 0 && (
        <button type="button" className="secondary small earlier" onClick={() => setLimit((l) => l + PAGE)}>
          Show earlier messages ({view.earlier} more)
        </button>
      )}
      <ol className="messages" ref={list}>
        {view.messages.map((m) => (
          <MessageItem
            key={m.id}
            m={m}
            conversation={c.id}
            receipts={receipts[m.id]}
            escalation={escalations[m.id]}
            recalled={recalls[m.id]}
            onRecalled={(r) => setRecalls((x) => ({ ...x, [m.id]: r }))}
            onEscalation={(e) => setEscalations((x) => ({ ...x, [m.id]: e }))}
            found={focus?.message === m.id}
            parent={m.content.reply_to ? (byId.get(m.content.reply_to) ?? null) : undefined}
            me={me}
            names={names}
            onReply={c.closed ? undefined : startReply}
            onForward={forwardTo ? startForward : undefined}
          />
        ))}
        {view.unsent.map((u) => (
          <li key={u.id} className="mine unsent">
            <p className="meta">
              You · <PriorityBadge p={u.priority} /> not sent yet
            </p>
            <p className="text">{u.text}</p>
          </li>
        ))}
        <li ref={end} className="end" aria-hidden="true" />
      </ol>
      </div>
      {forwarding && forwardTo && (
        <ForwardForm
          m={forwarding}
          from={c.id}
          patientRef={forwarding.content.forwarded?.patient_ref ?? c.patient_ref}
          targets={forwardTo}
          onDone={(to) => {
            setForwarding(null);
            if (to) setForwarded(`Forwarded to ${to}.`);
          }}
        />
      )}
      {forwarded && <p role="status">{forwarded}</p>}
      {!c.closed && (
        <form onSubmit={submit} className="composer">
          {replyTo && (
            <p className="replying" role="status">
              Replying to {replyTo.mine ? "yourself" : (replyTo.sender_name ?? "a colleague")}: {excerpt(replyTo)}{" "}
              <button type="button" className="secondary small" onClick={() => setReplyTo(null)}>
                Cancel reply
              </button>
            </p>
          )}
          <label htmlFor="text">Message</label>
          <textarea
            id="text"
            name="text"
            ref={composer}
            rows={3}
            onKeyDown={(e) => {
              // Enter sends; Shift+Enter starts a new line.
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
          <label htmlFor="files">Attach files</label>
          <input id="files" name="files" type="file" multiple />
          <VoiceRecorder onClip={(clip) => setClips((c) => [...c, clip])} />
          {clips.length > 0 && (
            <ul className="clips" aria-label="Voice clips to send">
              {clips.map((clip, i) => (
                <li key={clip.name}>
                  {clip.name} ({size(clip.size)}){" "}
                  <button
                    type="button"
                    className="secondary small"
                    aria-label={`Remove ${clip.name}`}
                    onClick={() => setClips((c) => c.filter((_, j) => j !== i))}
                  >
                    Remove
                  </button>
                </li>
              ))}
            </ul>
          )}
          <label htmlFor="priority">Priority</label>
          <select id="priority" name="priority" defaultValue="routine">
            <option value="routine">Routine</option>
            <option value="urgent">Urgent</option>
            <option value="stat">STAT</option>
          </select>
          <label htmlFor="ttl">Disappears</label>
          <select id="ttl" name="ttl" defaultValue="">
            <option value="">{c.lifespan ? `As the conversation says (${lifespan(c.lifespan)})` : "Never"}</option>
            {LIFESPANS.map(([secs, label]) => (
              <option key={secs} value={secs}>
                {label} after sending
              </option>
            ))}
          </select>
          <Problem failure={failure} />
          <button type="submit" disabled={busy}>
            {busy ? "Sending…" : "Send"}
          </button>
        </form>
      )}
    </section>
  );
}

/**
 * How long messages live here: every member's device deletes its copies
 * when the time comes (a legal hold keeps the server's; the server refuses
 * a lifespan longer than the organisation allows).
 */
function LifespanForm({ c }: { c: ConversationSummary }) {
  const { busy, failure, run } = useAction();
  const [saved, setSaved] = useState(false);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setSaved(false);
    const ttl = Number(new FormData(e.currentTarget).get("lifespan")) || null;
    const r = await run(() => ask({ op: "setLifespan", conversation: c.id, ttlSecs: ttl }));
    if (r) setSaved(true);
  };
  return (
    <details className="members">
      <summary>Disappearing messages</summary>
      <form onSubmit={submit} className="inline">
        <label htmlFor="lifespan">Messages here disappear</label>
        <select id="lifespan" name="lifespan" defaultValue={c.lifespan ?? ""}>
          <option value="">Never (the organisation's policy)</option>
          {LIFESPANS.map(([secs, label]) => (
            <option key={secs} value={secs}>
              {label} after sending
            </option>
          ))}
        </select>
        <button type="submit" disabled={busy}>
          Save
        </button>
      </form>
      {saved && <p role="status">Saved: it applies to messages sent from now on.</p>}
      <Problem failure={failure} />
    </details>
  );
}

/**
 * Who is in the conversation; in a group, adding and removing colleagues and
 * leaving (asked twice: leaving cannot be undone from here).
 */
function Members({ c, me, names }: { c: ConversationSummary; me: string; names: Record<string, string> }) {
  const { busy, failure, run } = useAction();
  const [leaving, setLeaving] = useState(false);
  const group = c.kind === "group";
  const others = c.members.filter((m) => m !== me);
  const addable = Object.entries(names)
    .filter(([id]) => !c.members.includes(id))
    .sort((a, b) => a[1].localeCompare(b[1]));
  const name = (id: string) => names[id] ?? "A colleague";
  const add = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const user = String(new FormData(e.currentTarget).get("colleague") ?? "");
    if (user) await run(() => ask({ op: "addMember", conversation: c.id, user }));
  };
  return (
    <details className="members">
      <summary>Members ({c.members.length})</summary>
      <ul>
        <li>You</li>
        {others.map((m) => (
          <li key={m}>
            {name(m)}
            {group && (
              <button
                type="button"
                className="secondary small"
                disabled={busy}
                aria-label={`Remove ${name(m)}`}
                onClick={() => run(() => ask({ op: "removeMember", conversation: c.id, user: m }))}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {group && addable.length > 0 && (
        <form onSubmit={add} className="inline">
          <label htmlFor="colleague">Add a colleague</label>
          <select id="colleague" name="colleague">
            {addable.map(([id, n]) => (
              <option key={id} value={id}>
                {n}
              </option>
            ))}
          </select>
          <button type="submit" disabled={busy}>
            Add
          </button>
        </form>
      )}
      <Problem failure={failure} />
      {group &&
        (leaving ? (
          <p role="group" aria-label="Leave this conversation?">
            You will no longer receive its messages; what you have here stays readable.{" "}
            <button
              type="button"
              disabled={busy}
              onClick={() => run(() => ask({ op: "leave", conversation: c.id }))}
            >
              Leave
            </button>{" "}
            <button type="button" className="secondary" onClick={() => setLeaving(false)}>
              Stay
            </button>
          </p>
        ) : (
          <button type="button" className="secondary" onClick={() => setLeaving(true)}>
            Leave conversation
          </button>
        ))}
    </details>
  );
}

/** Containers browsers record speech in, best first (Chromium and Firefox: WebM/Opus; Safari: MP4). */
const CLIP_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"];

/**
 * Records a voice clip from the microphone (MediaRecorder) and hands it over
 * as a file to send: it goes out encrypted like any attachment.
 */
function VoiceRecorder({ onClip }: { onClip: (clip: File) => void }) {
  const [recorder, setRecorder] = useState<MediaRecorder | null>(null);
  const [problem, setProblem] = useState(false);
  const start = async () => {
    setProblem(false);
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      setProblem(true);
      return;
    }
    const type = CLIP_TYPES.find((t) => MediaRecorder.isTypeSupported(t));
    const r = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks: Blob[] = [];
    r.ondataavailable = (e) => chunks.push(e.data);
    r.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const mime = (r.mimeType || "audio/webm").split(";")[0];
      const at = new Date().toTimeString().slice(0, 8).replace(/:/g, "");
      onClip(new File(chunks, `voice-clip-${at}.${mime.split("/")[1]}`, { type: mime }));
      setRecorder(null);
    };
    r.start();
    setRecorder(r);
  };
  return (
    <div className="recorder">
      {recorder ? (
        <button type="button" className="secondary" onClick={() => recorder.stop()}>
          Stop recording
        </button>
      ) : (
        <button type="button" className="secondary" onClick={start}>
          Record a voice clip
        </button>
      )}
      {recorder && <span role="status"> Recording…</span>}
      {problem && (
        <span role="alert"> The microphone could not be used: allow it for this site in the browser&apos;s settings.</span>
      )}
    </div>
  );
}

/**
 * Forwarding one message into another conversation: the worker uploads its
 * attachments again there, and the copy says who wrote the original.
 */
/** A conversation a message may be forwarded to. */
interface ForwardTarget {
  id: string;
  title: string;
  patientRef: string | null;
}

function ForwardForm({
  m,
  from,
  patientRef,
  targets,
  onDone,
}: {
  m: Message;
  from: string;
  /** The patient the message is about (its thread's, or the forward's it came in). */
  patientRef: string | null;
  targets: ForwardTarget[];
  /** The title forwarded to, or null when cancelled. */
  onDone: (to: string | null) => void;
}) {
  const { busy, failure, run } = useAction();
  const select = useRef<HTMLSelectElement>(null);
  const [to, setTo] = useState(targets[0]?.id ?? "");
  const target = targets.find((t) => t.id === to);
  useEffect(() => {
    select.current?.focus();
  }, []);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const to = String(new FormData(e.currentTarget).get("to"));
    const sent = await run(() => ask({ op: "forward", from, message: m.id, to }));
    if (sent) onDone(targets.find((t) => t.id === to)?.title ?? "the conversation");
  };
  return (
    <form onSubmit={submit} className="forward" aria-labelledby="forward-heading">
      <h3 id="forward-heading">Forward a message</h3>
      <p>
        {m.mine ? "Yours" : (m.sender_name ?? "A colleague's")}: {excerpt(m)}
      </p>
      {targets.length === 0 ? (
        <p>There is no other conversation to forward it to.</p>
      ) : (
        <>
          <label htmlFor="forward-to">Forward to</label>
          <select id="forward-to" name="to" ref={select} required value={to} onChange={(e) => setTo(e.target.value)}>
            {targets.map((t) => (
              <option key={t.id} value={t.id}>
                {t.title}
              </option>
            ))}
          </select>
        </>
      )}
      {patientRef && target && target.patientRef !== patientRef && (
        <p className="note" role="status">
          This message is about patient {patientRef}; {target.title} is not that patient's thread. The copy says which
          patient it is about.
        </p>
      )}
      <Problem failure={failure} />
      <div className="actions">
        {targets.length > 0 && (
          <button type="submit" disabled={busy}>
            {busy ? "Forwarding…" : "Forward"}
          </button>
        )}
        <button type="button" className="secondary" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function MessageItem({
  m,
  conversation,
  receipts,
  escalation,
  onEscalation,
  recalled,
  onRecalled,
  found,
  parent,
  me,
  names,
  onReply,
  onForward,
}: {
  m: Message;
  conversation: string;
  receipts?: ReceiptView;
  escalation?: EscalationView;
  onEscalation: (e: EscalationView) => void;
  recalled?: RecallView;
  onRecalled: (r: RecallView) => void;
  /** Opened at this message (a search result, an alert). */
  found?: boolean;
  /** The message this one answers (null: not here any more; undefined: not a reply). */
  parent?: Message | null;
  me: string;
  names: Record<string, string>;
  onReply?: (m: Message) => void;
  onForward?: (m: Message) => void;
}) {
  const who = m.mine ? "You" : (m.sender_name ?? "A colleague");
  const fwd = m.content.forwarded;
  return (
    <li
      className={`${m.mine ? "mine" : "theirs"}${found ? " found" : ""}`}
      data-id={m.id}
      id={`message-${m.id}`}
      tabIndex={found ? -1 : undefined}
    >
      <p className="meta">
        {who} · <time dateTime={new Date(m.sent_at * 1000).toISOString()}>{time(m.sent_at)}</time>{" "}
        <PriorityBadge p={m.priority} />
        {m.expires_at && !m.recalled_at && (
          <>
            {" "}
            · disappears at <time dateTime={new Date(m.expires_at * 1000).toISOString()}>{day(m.expires_at)}</time>
          </>
        )}
      </p>
      {parent !== undefined && (
        <blockquote className="quoted">
          {parent ? (
            <a href={`#message-${parent.id}`}>
              In reply to {parent.mine ? "you" : (parent.sender_name ?? "a colleague")}: {excerpt(parent)}
            </a>
          ) : (
            "In reply to an earlier message"
          )}
        </blockquote>
      )}
      {fwd && !m.recalled_at && (
        <p className="forwarded">
          Forwarded{fwd.patient_ref && ` from patient ${fwd.patient_ref}'s thread`} · written by{" "}
          {fwd.sender_user === me ? "you" : (names[fwd.sender_user] ?? "a colleague")},{" "}
          <time dateTime={new Date(fwd.sent_at * 1000).toISOString()}>{day(fwd.sent_at)}</time>
        </p>
      )}
      {(m.recalled_at || m.content.text) && (
        <p className="text">{m.recalled_at ? <em>Recalled</em> : m.content.text}</p>
      )}
      {!m.recalled_at && (m.content.attachments ?? []).length > 0 && (
        <ul className="attachments" aria-label="Attachments">
          {m.content.attachments!.map((a) => (
            <AttachmentItem key={a.id} a={a} conversation={conversation} message={m.id} />
          ))}
        </ul>
      )}
      {m.mine && !m.recalled_at && receipts && <Receipts r={receipts} />}
      {escalation && !m.recalled_at && (m.mine ? <EscalationLadder e={escalation} /> : <AcknowledgeBar e={escalation} onDone={onEscalation} />)}
      {onReply && !m.recalled_at && (
        <button type="button" className="secondary small reply" onClick={() => onReply(m)} aria-label={`Reply to ${who}: ${excerpt(m)}`}>
          Reply
        </button>
      )}
      {onForward && !m.recalled_at && (
        <button type="button" className="secondary small reply" onClick={() => onForward(m)} aria-label={`Forward ${who}: ${excerpt(m)}`}>
          Forward
        </button>
      )}
      {m.mine && !m.recalled_at && !recalled && <RecallButton m={m} conversation={conversation} onDone={onRecalled} />}
      {recalled && <RecallOutcome r={recalled} />}
    </li>
  );
}

/**
 * Decrypted attachments of this page, by id (object URLs): opened once, kept
 * while the device is open. They hold patient data, so the page never writes
 * them anywhere; the browser's download does, when the person asks.
 */
const opened = new Map<string, string>();

/** Lets go of every opened attachment (the device closed: locked, signed out, wiped, taken over). */
function forgetAttachments() {
  opened.forEach((url) => URL.revokeObjectURL(url));
  opened.clear();
}

async function openAttachment(conversation: string, message: string, a: Attachment): Promise<string | null> {
  const known = opened.get(a.id);
  if (known) return known;
  const r = await ask({ op: "attachment", conversation, message, attachment: a.id });
  if (!r.ok) return null;
  const url = URL.createObjectURL(new Blob([r.value.data], { type: r.value.mime }));
  opened.set(a.id, url);
  return url;
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${Math.round(bytes / 1024)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A photo shows at once; every attachment can be saved; a voice clip plays. */
function AttachmentItem({ a, conversation, message }: { a: Attachment; conversation: string; message: string }) {
  const [url, setUrl] = useState<string | null>(opened.get(a.id) ?? null);
  const [problem, setProblem] = useState(false);
  useEffect(() => {
    // Photos show and voice clips are ready to play without asking; files open when saved.
    if (a.kind === "file" || url) return;
    openAttachment(conversation, message, a).then((u) => (u ? setUrl(u) : setProblem(true)));
  }, [a, conversation, message, url]);
  const save = async () => {
    const u = url ?? (await openAttachment(conversation, message, a));
    if (!u) return setProblem(true);
    setUrl(u);
    const link = document.createElement("a");
    link.href = u;
    link.download = a.name;
    link.click();
  };
  return (
    <li>
      {a.kind === "photo" && url && <img src={url} alt={`Photo: ${a.name}`} className="photo" />}
      {a.kind === "voice" && url && <audio src={url} controls aria-label={`Voice clip: ${a.name}`} />}
      <button type="button" className="secondary small" onClick={save}>
        Save {a.name} ({size(a.size)})
      </button>
      {problem && <span role="alert"> This attachment could not be opened.</span>}
    </li>
  );
}

/** Receipts older than this say when they were true. */
const RECEIPTS_STALE_SECS = 30;

/** How many of my latest messages show their receipts. */
const RECEIPTS_SHOWN = 20;

/**
 * One line per message (who has read it, who has it, who does not yet), and
 * the detail per device on demand.
 */
function Receipts({ r }: { r: ReceiptView }) {
  const people = new Map<string, { name: string; delivered: boolean; read: boolean }>();
  for (const d of r.devices) {
    const p = people.get(d.user) ?? { name: d.name, delivered: false, read: false };
    p.delivered ||= d.delivered_at != null;
    p.read ||= d.read_at != null;
    people.set(d.user, p);
  }
  const all = [...people.values()];
  const read = all.filter((p) => p.read).map((p) => p.name);
  const delivered = all.filter((p) => p.delivered && !p.read).map((p) => p.name);
  const waiting = [...all.filter((p) => !p.delivered).map((p) => p.name), ...r.not_received.map((n) => n.name)];
  const parts = [
    read.length > 0 && `Read by ${read.join(", ")}`,
    delivered.length > 0 && `Delivered to ${delivered.join(", ")}`,
    waiting.length > 0 && `Not yet delivered to ${waiting.join(", ")}`,
  ].filter(Boolean);
  const devicesOf = (user: string) => r.devices.filter((d) => d.user === user);
  return (
    <div className="receipts">
      <p>
        {parts.join(" · ") || "Sent"}
        {/* Not asked again lately (offline, or no longer a member): say when it was true. */}
        {Date.now() / 1000 - r.as_of > RECEIPTS_STALE_SECS && ` (as of ${time(r.as_of)})`}
      </p>
      <details>
        <summary>Receipts by device</summary>
        <ul>
          {r.devices.map((d, i) => {
            const own = devicesOf(d.user);
            const which = own.length > 1 ? `, device ${own.indexOf(d) + 1} of ${own.length}` : "";
            return (
              <li key={i}>
                {d.name}
                {which}:{" "}
                {d.delivered_at == null ? "not delivered yet" : `delivered ${time(d.delivered_at)}`}
                {d.read_at != null && `, read ${time(d.read_at)}`}
              </li>
            );
          })}
          {r.not_received.map((n) => (
            <li key={n.user}>
              {n.name}: {n.reason === "no_device" ? "has no device yet" : "joined after this message (it is shared with them)"}
            </li>
          ))}
        </ul>
      </details>
    </div>
  );
}
