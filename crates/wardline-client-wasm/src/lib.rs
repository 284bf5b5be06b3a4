//! The web app's binding of the Wardline client core (`wardline-client`'s
//! `core`): one [`Device`] object per browser device, living in the app's
//! worker, which alone holds MLS keys and decrypted messages.
//!
//! The network stays on the JavaScript side, as matrix-sdk-crypto-wasm does
//! for Element Web: the core makes request bodies (device registration,
//! commits, encrypted messages), the worker sends them with `fetch` and hands
//! the answers back. Structured values cross the boundary as JSON text in the
//! API's own shapes (`wardline-proto`, the OpenAPI document), so the worker
//! can post a request body as it is.
//!
//! Persistence: [`Device::seal`] returns the whole state sealed (AES-256-GCM,
//! key from Argon2id of the PIN; `WLS1 ‖ salt ‖ sealed`), bound to the
//! record it is stored as (`wardline-web/v1/devices/<device id>`): a record
//! copied under another device id does not open. The worker writes it to
//! IndexedDB *before* acknowledging what changed it (apply → persist → ack).
//!
//! Times are Unix seconds as JavaScript numbers (exact below 2^53).

use std::collections::BTreeSet;

use serde::Serialize;
use uuid::Uuid;
use wardline_client::core::{
    ChatCore, CoreError, LocalMessage, MessageContent, SealedStateKey, derive_key,
};
use wardline_proto::messaging::{ClaimedKeyPackages, Conversation, DeviceList, Priority};
use wardline_proto::sync::InboxEntry;
use wasm_bindgen::prelude::*;

/// Key packages a new device uploads, and tops up to when it runs low (as the CLI).
pub const KEY_PACKAGE_BATCH: usize = 20;

/// Version of the store record format; a new one comes with a fixture test.
pub const STORE_FORMAT: u32 = 1;

/// The associated data a device's sealed state is bound to.
fn record_context(device: Uuid) -> Vec<u8> {
    format!("wardline-web/v{STORE_FORMAT}/devices/{device}").into_bytes()
}

/// The associated data a device's sealed session (token and who signed in)
/// is bound to: a session record never passes for a state record, nor for
/// another device's session.
fn session_context(device: Uuid) -> Vec<u8> {
    format!("wardline-web/v{STORE_FORMAT}/sessions/{device}").into_bytes()
}

/// An error for JavaScript: its message is shown to the person, so it says
/// what went wrong in their terms and never carries content or keys.
fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn uuid(s: &str) -> Result<Uuid, JsError> {
    Uuid::parse_str(s).map_err(|_| js(format!("{s:?} is not an id")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, JsError> {
    serde_json::from_str(s).map_err(|e| js(format!("unexpected {what}: {e}")))
}

fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("core values serialise")
}

/// Seconds from a JavaScript number (fractions dropped).
fn secs(t: f64) -> i64 {
    t as i64
}

/// A conversation as the list shows it.
#[derive(Serialize)]
struct ConversationSummary<'a> {
    id: Uuid,
    title: Option<&'a str>,
    patient_ref: Option<&'a str>,
    members: &'a [Uuid],
    closed: bool,
    /// Messages from others after the last one this device showed.
    unread: usize,
    /// The highest priority among the unread ones (`routine` when none).
    unread_priority: Priority,
    last: Option<&'a LocalMessage>,
    /// Outbox messages not sent yet.
    unsent: usize,
    /// This device is in the conversation's MLS group (it can send).
    joined: bool,
}

/// A message as the conversation view shows it, with its sender's name.
#[derive(Serialize)]
struct ShownMessage<'a> {
    #[serde(flatten)]
    message: &'a LocalMessage,
    sender_name: Option<&'a str>,
}

/// An outbox message, shown after the sent ones until it goes.
#[derive(Serialize)]
struct Unsent<'a> {
    id: Uuid,
    text: &'a str,
    priority: Priority,
}

/// One browser device: MLS identity, conversations, outbox, and the key its
/// store is sealed with (zeroized when dropped).
#[wasm_bindgen]
pub struct Device {
    core: ChatCore,
    key: SealedStateKey,
}

#[wasm_bindgen]
impl Device {
    /// A new device identity for `user`, its store sealed under `pin`.
    /// `min_pin_length` is the organisation's `min_pin_length` when its
    /// device policy has `require_local_pin` (0 otherwise).
    pub fn create(
        user: &str,
        device: &str,
        pin: &str,
        min_pin_length: u32,
    ) -> Result<Device, JsError> {
        if (pin.chars().count() as u32) < min_pin_length {
            return Err(js(format!(
                "Your organisation requires a PIN of at least {min_pin_length} characters."
            )));
        }
        let core = ChatCore::new(uuid(user)?, uuid(device)?).map_err(js)?;
        let key = derive_key(pin, None).map_err(js)?;
        Ok(Device { core, key })
    }

    /// Opens a sealed state with the PIN. A wrong PIN (or a record altered
    /// or copied from another device) opens nothing.
    pub fn open(sealed: &[u8], device: &str, pin: &str) -> Result<Device, JsError> {
        Device::open_record(sealed, uuid(device)?, pin).map_err(js)
    }

    /// The whole state, sealed and bound to this device's record.
    pub fn seal(&self) -> Vec<u8> {
        self.core
            .seal_as(&self.key, &record_context(self.core.mls.device))
    }

    pub fn user(&self) -> String {
        self.core.mls.user.to_string()
    }

    /// Seals the signed-in session (`{ token, session }` as the worker keeps
    /// it, JSON) under this store's key, bound to this device's session
    /// record: a reload opens it with the PIN instead of signing in again,
    /// and nothing in IndexedDB hands the token to page script without it.
    pub fn seal_session(&self, session: &str) -> Vec<u8> {
        self.key
            .seal_as(&session_context(self.core.mls.device), session.as_bytes())
    }

    /// Opens what [`Device::seal_session`] sealed (the same store's key).
    pub fn open_session(&self, sealed: &[u8]) -> Result<String, JsError> {
        self.session_record(sealed)
            .ok_or_else(|| js("This browser's saved session does not open. Sign in again."))
    }

    /// Days since this device last reached the server (by the server's own
    /// clock, as last seen), when that is at least the device policy's
    /// `max_offline_days`: the store must then not open until the server is
    /// reached. `device_now` in Unix seconds.
    pub fn offline_too_long(&self, device_now: f64) -> Option<f64> {
        self.core
            .offline_too_long(secs(device_now))
            .map(|d| d as f64)
    }

    /// The device policy kept from the server (`DevicePolicy`, JSON), if any:
    /// what applies while the server cannot be asked.
    pub fn policy(&self) -> Option<String> {
        self.core.device_policy.as_ref().map(to_json)
    }

    /// The latest server time seen (Unix seconds; 0: never reached).
    pub fn server_time(&self) -> f64 {
        self.core.server_time() as f64
    }

    pub fn device(&self) -> String {
        self.core.mls.device.to_string()
    }

    /// Highest inbox position applied: where sync resumes.
    pub fn cursor(&self) -> f64 {
        self.core.cursor as f64
    }

    /// The body of `POST /api/v1/devices` (identity key and key packages).
    /// Seal and store before sending it: the key packages' private keys
    /// must exist before the server can hand them out.
    pub fn registration(&self, name: &str) -> Result<String, JsError> {
        let r = self
            .core
            .registration(name, KEY_PACKAGE_BATCH)
            .map_err(js)?;
        Ok(to_json(&r))
    }

    /// The body of `POST /api/v1/devices/{id}/key-packages`, topping up
    /// the stock.
    pub fn more_key_packages(&self) -> Result<String, JsError> {
        Ok(to_json(
            &self.core.more_key_packages(KEY_PACKAGE_BATCH).map_err(js)?,
        ))
    }

    /// Applies a page of inbox entries (`SyncResponse.entries` or socket
    /// `entry` frames, JSON array); returns the events (JSON array of
    /// `{kind, …}`). Entries at or below the cursor are ignored.
    pub fn apply(&mut self, entries: &str) -> Result<String, JsError> {
        let entries: Vec<InboxEntry> = from_json("inbox entries", entries)?;
        let events: Vec<_> = entries.iter().flat_map(|e| self.core.apply(e)).collect();
        Ok(to_json(&events))
    }

    /// Remembers the server's clock (`SyncResponse.server_time`).
    pub fn saw_server_time(&mut self, t: f64) {
        self.core.saw_server_time(secs(t));
    }

    /// Deletes local copies past their lifespan or retention; how many.
    pub fn expire(&mut self, device_now: f64) -> u32 {
        self.core.expire(secs(device_now)) as u32
    }

    /// Keeps the device policy (`DeviceStatus.policy`, JSON).
    pub fn set_policy(&mut self, policy: &str) -> Result<(), JsError> {
        self.core.device_policy = Some(from_json("device policy", policy)?);
        Ok(())
    }

    /// Whether the kept device policy lets an attachment of this MIME type
    /// be sent (`DevicePolicy::allows_attachment`, the rule the command line
    /// uses; no policy kept yet: any).
    pub fn allows_attachment(&self, mime: &str) -> bool {
        self.core
            .device_policy
            .as_ref()
            .is_none_or(|p| p.allows_attachment(mime))
    }

    /// Colleagues' names (`{ "<user id>": "name" }`), kept for offline use.
    pub fn set_directory(&mut self, names: &str) -> Result<(), JsError> {
        self.core.directory = from_json("directory", names)?;
        Ok(())
    }

    /// The account's devices (`DeviceList`, JSON) as fetched right after
    /// this device registered: not news to it.
    pub fn know_devices(&mut self, devices: &str) -> Result<(), JsError> {
        let list: DeviceList = from_json("device list", devices)?;
        self.core.know_devices(&list);
        Ok(())
    }

    /// Compares the account's devices (`DeviceList`, JSON) with the known
    /// ones; returns `new_device` events.
    pub fn check_devices(&mut self, devices: &str) -> Result<String, JsError> {
        let list: DeviceList = from_json("device list", devices)?;
        Ok(to_json(&self.core.check_devices(&list)))
    }

    /// Key packages this device has on the server, per `DeviceList`.
    pub fn key_packages_available(&self, devices: &str) -> Result<f64, JsError> {
        let list: DeviceList = from_json("device list", devices)?;
        Ok(list
            .devices
            .iter()
            .find(|d| d.id == self.core.mls.device)
            .map_or(0.0, |d| d.key_packages_available as f64))
    }

    /// Keeps the server's view of a conversation (`Conversation`, JSON). If
    /// the server just opened it with this device as its first member
    /// (epoch 0), makes its MLS group.
    pub fn update_conversation(&mut self, conversation: &str) -> Result<(), JsError> {
        let c: Conversation = from_json("conversation", conversation)?;
        let first = c.epoch == 0
            && c.devices.iter().any(|d| {
                d.device_id == self.core.mls.device
                    && d.state == wardline_proto::messaging::DeviceState::Member
            });
        if first && !self.core.mls.has_group(c.id) {
            self.core
                .mls
                .create_group(c.id)
                .map_err(|e| js(CoreError::from(e)))?;
        }
        self.core.update_conversation(&c);
        Ok(())
    }

    /// What the group must change to match the server (`Conversation`,
    /// JSON): `{ "add": [device ids], "remove": [device ids] }`.
    pub fn plan(&mut self, conversation: &str) -> Result<String, JsError> {
        let c: Conversation = from_json("conversation", conversation)?;
        let p = self.core.plan(&c).map_err(js)?;
        Ok(serde_json::json!({ "add": p.add, "remove": p.remove }).to_string())
    }

    /// A commit adding the claimed devices (`ClaimedKeyPackages`, JSON):
    /// the body of `POST /api/v1/conversations/{id}/messages`.
    pub fn commit_add(&mut self, conversation: &str, claimed: &str) -> Result<String, JsError> {
        let claimed: ClaimedKeyPackages = from_json("claimed key packages", claimed)?;
        let req = self
            .core
            .commit_add(uuid(conversation)?, &claimed.key_packages)
            .map_err(js)?;
        Ok(to_json(&req))
    }

    /// A commit removing devices (JSON array of ids).
    pub fn commit_remove(&mut self, conversation: &str, devices: &str) -> Result<String, JsError> {
        let devices: Vec<Uuid> = from_json("device ids", devices)?;
        let req = self
            .core
            .commit_remove(uuid(conversation)?, &devices)
            .map_err(js)?;
        Ok(to_json(&req))
    }

    /// The server accepted this device's commit (at `at`): merge it.
    pub fn commit_accepted(&mut self, conversation: &str, at: f64) -> Result<(), JsError> {
        self.core
            .commit_accepted(uuid(conversation)?, secs(at))
            .map_err(js)
    }

    /// The server refused this device's commit: forget it.
    pub fn commit_refused(&mut self, conversation: &str) -> Result<(), JsError> {
        self.core
            .mls
            .clear_pending(uuid(conversation)?)
            .map_err(|e| js(CoreError::from(e)))
    }

    /// Puts a message in the outbox (`priority`: routine, urgent or stat;
    /// `reply_to`: a message id or empty; `attachments`: JSON array of
    /// `AttachmentRef`, each already uploaded; `ttl_secs`: a disappearing
    /// message's lifespan in seconds, which the server bounds by the
    /// policy's `max_ttl_secs`). Returns its id.
    pub fn queue_text(
        &mut self,
        conversation: &str,
        text: &str,
        priority: &str,
        reply_to: &str,
        attachments: &str,
        ttl_secs: Option<f64>,
    ) -> Result<String, JsError> {
        let priority = Priority::parse(priority)
            .ok_or_else(|| js(format!("unknown priority {priority:?}")))?;
        let mut content = MessageContent::text(text);
        if !reply_to.is_empty() {
            content.reply_to = Some(uuid(reply_to)?);
        }
        content.attachments = from_json("attachments", attachments)?;
        Ok(self
            .core
            .queue(uuid(conversation)?, content, priority, ttl_secs.map(secs))
            .to_string())
    }

    /// The attachments (`AttachmentRef`s, keys included: for the worker
    /// only) of a message about to be forwarded, which go up again to the
    /// target conversation; refused as [`ChatCore::forwardable`] refuses
    /// (`allow_forwarding` off, message gone or recalled).
    pub fn forwarding(&self, conversation: &str, message: &str) -> Result<String, JsError> {
        let m = self
            .core
            .forwardable(uuid(conversation)?, uuid(message)?)
            .map_err(js)?;
        Ok(to_json(&m.content.attachments))
    }

    /// Queues the forward of `message` (of `from`) into `to`, with its
    /// attachments as uploaded there (JSON array of `AttachmentRef`).
    /// Returns the new message's id.
    pub fn queue_forward(
        &mut self,
        from: &str,
        message: &str,
        to: &str,
        attachments: &str,
    ) -> Result<String, JsError> {
        let attachments = from_json("attachments", attachments)?;
        Ok(self
            .core
            .queue_forward(uuid(from)?, uuid(message)?, uuid(to)?, attachments)
            .map_err(js)?
            .to_string())
    }

    /// The outbox entry to send next, skipping the conversations in
    /// `blocked` (JSON array of ids), or none.
    pub fn next_to_send(&self, blocked: &str) -> Result<Option<u32>, JsError> {
        let blocked: BTreeSet<Uuid> = from_json("conversation ids", blocked)?;
        Ok(self.core.next_to_send(&blocked).map(|i| i as u32))
    }

    /// The conversation of outbox entry `i`.
    pub fn outbox_conversation(&self, i: u32) -> Option<String> {
        self.core
            .outbox
            .get(i as usize)
            .map(|o| o.conversation.to_string())
    }

    /// This device is in the conversation's MLS group.
    pub fn has_group(&mut self, conversation: &str) -> Result<bool, JsError> {
        Ok(self.core.mls.has_group(uuid(conversation)?))
    }

    /// This person left `conversation` (the server answered `DELETE
    /// …/members/{their own id}`): the group's keys are forgotten, messages
    /// still queued there dropped, the history kept, closed. Store after.
    pub fn left(&mut self, conversation: &str) -> Result<(), JsError> {
        self.core.left(uuid(conversation)?).map_err(js)
    }

    /// The server said the conversation is closed to this device.
    pub fn is_closed(&self, conversation: &str) -> Result<bool, JsError> {
        Ok(self
            .core
            .conversations
            .get(&uuid(conversation)?)
            .is_some_and(|c| c.closed))
    }

    /// Encrypts outbox entry `i`: the body of `POST
    /// /api/v1/conversations/{id}/messages`. The ratchet moved: seal and
    /// store before sending.
    pub fn encrypt_at(&mut self, i: u32) -> Result<String, JsError> {
        match self.core.encrypt_at(i as usize) {
            Some(Ok(req)) => Ok(to_json(&req)),
            Some(Err(e)) => Err(js(e)),
            None => Err(js("no such outbox message")),
        }
    }

    /// The server accepted outbox entry `i` (`SubmitMessageResponse`
    /// times): it moves into the conversation's history.
    pub fn sent_at(&mut self, i: u32, at: f64, expires_at: Option<f64>) {
        self.core
            .sent_at(i as usize, secs(at), expires_at.map(secs));
    }

    /// Entry `i` must be encrypted again (the epoch moved).
    pub fn reencrypt_at(&mut self, i: u32) {
        self.core.reencrypt_at(i as usize);
    }

    /// Takes entry `i` out of the outbox (refused for good); returns its id.
    pub fn drop_at(&mut self, i: u32) -> Option<String> {
        self.core.drop_at(i as usize).map(|o| o.id.to_string())
    }

    /// The conversation list (JSON array), most recent activity first.
    pub fn conversations(&mut self) -> String {
        let ids: Vec<Uuid> = self.core.conversations.keys().copied().collect();
        let joined: BTreeSet<Uuid> = ids
            .into_iter()
            .filter(|c| self.core.mls.has_group(*c))
            .collect();
        let mut list: Vec<ConversationSummary> = self
            .core
            .conversations
            .values()
            .map(|c| {
                let from = self
                    .core
                    .shown
                    .get(&c.id)
                    .and_then(|s| c.messages.iter().position(|m| m.id == *s))
                    .map_or(0, |p| p + 1);
                let unread: Vec<&LocalMessage> =
                    c.messages[from..].iter().filter(|m| !m.mine).collect();
                ConversationSummary {
                    id: c.id,
                    title: c.title.as_deref(),
                    patient_ref: c.patient_ref.as_deref(),
                    members: &c.members,
                    closed: c.closed,
                    unread: unread.len(),
                    unread_priority: unread.iter().map(|m| m.priority).max().unwrap_or_default(),
                    last: c.messages.last(),
                    unsent: self
                        .core
                        .outbox
                        .iter()
                        .filter(|o| o.conversation == c.id)
                        .count(),
                    joined: joined.contains(&c.id),
                }
            })
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.last.map_or(0, |m| m.sent_at)));
        to_json(&list)
    }

    /// One attachment of a message, with its key (`AttachmentRef`, JSON),
    /// or none when the message or attachment is not here.
    pub fn attachment_ref(
        &self,
        conversation: &str,
        message: &str,
        attachment: &str,
    ) -> Result<Option<String>, JsError> {
        let (conversation, message, attachment) =
            (uuid(conversation)?, uuid(message)?, uuid(attachment)?);
        Ok(self
            .core
            .conversations
            .get(&conversation)
            .and_then(|c| c.messages.iter().find(|m| m.id == message))
            .and_then(|m| m.content.attachments.iter().find(|a| a.id == attachment))
            .map(to_json))
    }

    /// A conversation's latest `limit` messages, oldest first, each with its
    /// sender's name when known; how many earlier ones there are; then its
    /// unsent outbox messages: `{ messages, earlier, unsent }`. A long thread
    /// is shown (and parsed, and rendered) a page at a time.
    pub fn messages(&self, conversation: &str, limit: u32) -> Result<String, JsError> {
        let id = uuid(conversation)?;
        let all = self
            .core
            .conversations
            .get(&id)
            .map_or(&[][..], |c| c.messages.as_slice());
        let earlier = all.len().saturating_sub(limit as usize);
        let shown: Vec<ShownMessage> = all[earlier..]
            .iter()
            .map(|m| self.shown_message(m))
            .collect();
        let unsent: Vec<Unsent> = self
            .core
            .outbox
            .iter()
            .filter(|o| o.conversation == id)
            .map(|o| Unsent {
                id: o.id,
                text: &o.content.text,
                priority: o.priority,
            })
            .collect();
        Ok(
            serde_json::json!({ "messages": shown, "earlier": earlier, "unsent": unsent })
                .to_string(),
        )
    }

    /// Messages in every conversation containing every word of `query`
    /// (partial, case-insensitive; [`ChatCore::search`]), newest first, at
    /// most `limit`: JSON array of `{ conversation, message, after }`, the
    /// message with its sender's name, `after` how many follow it in its
    /// thread (show the latest `after + 1` or more to reach it).
    pub fn search(&self, query: &str, limit: u32) -> String {
        let found: Vec<serde_json::Value> = self
            .core
            .search(query, limit as usize)
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "conversation": f.conversation,
                    "message": self.shown_message(f.message),
                    "after": f.after,
                })
            })
            .collect();
        to_json(&found)
    }

    /// Seals a secure message to a patient on this device
    /// (`core::patient::seal_for_patient`): the request's `sealed` part,
    /// `{ ciphertext, key_fragment }` (JSON). Keep the fragment with
    /// [`Device::keep_patient_key`] once the server has named the message.
    pub fn seal_for_patient(&self, text: &str) -> String {
        let (ciphertext, fragment) = wardline_client::core::patient::seal_for_patient(text);
        to_json(&wardline_proto::patients::ClientSealed {
            ciphertext: wardline_proto::messaging::B64(ciphertext),
            key_fragment: fragment.to_string(),
        })
    }

    /// Keeps the key of a secure message this device sealed (stored with the
    /// rest of the state: seal and store after).
    pub fn keep_patient_key(&mut self, message: &str, fragment: &str) -> Result<(), JsError> {
        self.core
            .patient_keys
            .insert(uuid(message)?, fragment.to_owned());
        Ok(())
    }

    /// A patient thread (`PatientThread`, JSON) with the messages this
    /// device sealed opened (`text` filled in); others' sealed messages
    /// stay sealed (`text` empty).
    pub fn open_patient_thread(&self, thread: &str) -> Result<String, JsError> {
        let mut t: wardline_proto::patients::PatientThread = from_json("patient thread", thread)?;
        for m in &mut t.messages {
            if let (Some(sealed), Some(key)) = (&m.sealed, self.core.patient_keys.get(&m.id))
                && let Some(text) = wardline_client::core::patient::open_for_patient(&sealed.0, key)
            {
                m.text = text;
            }
        }
        Ok(to_json(&t))
    }

    /// Where message `id` is: `{ conversation, after }` (JSON; `after`:
    /// messages following it there), or none when it is not on this device.
    pub fn locate(&self, id: &str) -> Result<Option<String>, JsError> {
        Ok(self
            .core
            .locate(uuid(id)?)
            .map(|(c, after)| serde_json::json!({ "conversation": c, "after": after }).to_string()))
    }

    /// Urgent and STAT messages sent at or after `since` (Unix seconds):
    /// from others (they may wait for this person's acknowledgement) and
    /// this person's own (whose escalation they follow), newest first. JSON
    /// array of `{ conversation, message }`, the message with its sender's name.
    pub fn urgent(&self, since: f64) -> String {
        let since = secs(since);
        let mut all = self.core.urgent_from_others(since);
        all.extend(self.core.urgent_sent(since));
        all.sort_by_key(|(_, m)| std::cmp::Reverse(m.sent_at));
        let list: Vec<serde_json::Value> = all
            .into_iter()
            .map(
                |(c, m)| serde_json::json!({ "conversation": c, "message": self.shown_message(m) }),
            )
            .collect();
        to_json(&list)
    }

    /// The person was shown `conversation` up to its newest message: its
    /// unread count starts again from there.
    pub fn shown(&mut self, conversation: &str) -> Result<(), JsError> {
        let id = uuid(conversation)?;
        if let Some(last) = self
            .core
            .conversations
            .get(&id)
            .and_then(|c| c.messages.last())
        {
            self.core.shown.insert(id, last.id);
        }
        Ok(())
    }
}

impl Device {
    fn shown_message<'a>(&'a self, m: &'a LocalMessage) -> ShownMessage<'a> {
        ShownMessage {
            message: m,
            sender_name: self.core.directory.get(&m.sender_user).map(String::as_str),
        }
    }

    /// [`Device::open_session`] for Rust callers (tests): none when the
    /// record is not this device's session under this key.
    pub fn session_record(&self, sealed: &[u8]) -> Option<String> {
        let json = self
            .key
            .open_as(&session_context(self.core.mls.device), sealed)
            .ok()?;
        String::from_utf8(json.to_vec()).ok()
    }

    /// [`Device::open`] for Rust callers (tests): the error is the core's.
    pub fn open_record(sealed: &[u8], device: Uuid, pin: &str) -> Result<Device, CoreError> {
        let key = derive_key(pin, Some(sealed))?;
        let core = ChatCore::open_as(sealed, &key, &record_context(device))?;
        Ok(Device { core, key })
    }
}

/// Most message ids one `POST …/read` names (the API's `MAX_READ_IDS`).
#[wasm_bindgen]
pub fn max_read_ids() -> u32 {
    wardline_proto::messaging::MAX_READ_IDS as u32
}

/// An attachment encrypted for upload: the ciphertext goes to `POST
/// /api/v1/conversations/{id}/attachments`, the key only inside the MLS
/// message (`AttachmentRef.key`).
#[wasm_bindgen]
pub struct SealedAttachment {
    ciphertext: Vec<u8>,
    key: String,
}

#[wasm_bindgen]
impl SealedAttachment {
    /// AES-256-GCM of the bytes (associated data `wardline/attachment/v1`).
    pub fn ciphertext(&self) -> Vec<u8> {
        self.ciphertext.clone()
    }

    /// The blob's own fresh key, base64 (as `AttachmentRef.key`).
    pub fn key(&self) -> String {
        self.key.clone()
    }
}

/// Encrypts `data` under a fresh key (the core's `seal_attachment`).
#[wasm_bindgen]
pub fn seal_attachment(data: &[u8]) -> SealedAttachment {
    let (ciphertext, key) = wardline_client::core::content::seal_attachment(data);
    SealedAttachment {
        ciphertext,
        key: serde_json::to_value(&key)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

/// Opens a downloaded attachment with the key from its message (base64);
/// an altered blob or a wrong key opens nothing.
#[wasm_bindgen]
pub fn open_attachment(ciphertext: &[u8], key: &str) -> Result<Vec<u8>, JsError> {
    let key: wardline_proto::messaging::B64 = from_json("key", &to_json(&key))?;
    wardline_client::core::content::open_attachment(ciphertext, &key)
        .ok_or_else(|| js("the attachment does not open with its message's key"))
}
