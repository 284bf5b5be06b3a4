//! The sans-I/O chat state machine of one device: what it knows (local
//! state), what it does with each inbox entry, and the requests it wants
//! sent. The network layer (`crate::chat` natively, a web client's own in a
//! browser) moves bytes and calls back in.
//!
//! Invariants:
//! * an inbox entry is applied at most once: entries at or below `cursor` and
//!   message ids already seen are skipped (delivery is at-least-once);
//! * the local state, MLS state included, is saved *before* the cursor is
//!   acknowledged, so an acknowledged entry is never lost;
//! * the outbox keeps the plaintext of unsent messages in order; a message is
//!   encrypted only when it is about to be submitted, in the epoch the server
//!   expects, and leaves the outbox only once the server accepted it;
//! * once encrypted, a message keeps its ciphertext until the server accepts
//!   it or says it stored nothing (stale epoch, membership pending): a retry
//!   after a lost answer sends the same bytes under the same id, which the
//!   server recognises as a duplicate. Encrypting again would make a second
//!   message under an id the server already holds, refused for ever;
//! * a recalled message loses its content at once (a placeholder says it was
//!   recalled); an expired one (lifespan or retention) is deleted, judged by
//!   the later of the device's clock and the last server time it saw, so
//!   turning the device's clock back keeps nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wardline_proto::lifecycle::{DevicePolicy, EffectiveLifecycle};
use wardline_proto::messaging::*;
use wardline_proto::routing::AlertNotice;
use wardline_proto::sync::InboxEntry;
use zeroize::Zeroizing;

use super::content::{AttachmentRef, Forwarded, MessageContent};
use super::mls::{Incoming, MlsDevice, MlsError};
use super::store::{self, SealedStateKey, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMessage {
    pub id: Uuid,
    pub sender_user: Uuid,
    pub sender_device: Uuid,
    pub content: MessageContent,
    pub priority: Priority,
    pub sent_at: i64,
    pub mine: bool,
    /// Ephemeral: deleted at this time.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Recalled by its sender or an administrator: the content is gone.
    #[serde(default)]
    pub recalled_at: Option<i64>,
}

/// A change of the group's membership, as the MLS commit made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChange {
    pub at: i64,
    /// The member whose device committed it.
    pub by: Option<Uuid>,
    /// `(user, device)` pairs.
    pub added: Vec<(Uuid, Uuid)>,
    pub removed: Vec<(Uuid, Uuid)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LocalConversation {
    pub id: Uuid,
    pub title: Option<String>,
    pub patient_ref: Option<String>,
    pub members: Vec<Uuid>,
    pub messages: Vec<LocalMessage>,
    /// Who joined and left the group, and when (shown beside the messages).
    #[serde(default)]
    pub changes: Vec<GroupChange>,
    /// This device was removed from the group.
    pub closed: bool,
    /// Retention and lifespan here, as the server last said.
    #[serde(default)]
    pub lifecycle: Option<EffectiveLifecycle>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub id: Uuid,
    pub conversation: Uuid,
    pub content: MessageContent,
    pub priority: Priority,
    /// The MLS ciphertext of the last submission attempt, kept for retries.
    #[serde(default)]
    pub encrypted: Option<B64>,
    /// Lifespan asked for (ephemeral message).
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

/// What applying an entry did, for the user interface (serialised as
/// `{"kind": "message", …}` for the web app's worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Message {
        conversation: Uuid,
        message: LocalMessage,
    },
    /// A notice from the server that is not a conversation's message: a
    /// patient this user wrote to replied (see `wardline patients thread`).
    Notice {
        notice: wardline_proto::patients::StaffNotice,
    },
    Joined {
        conversation: Uuid,
    },
    /// The group moved to a new epoch; devices may have joined or left.
    Commit {
        conversation: Uuid,
        change: GroupChange,
    },
    /// The server says membership changed: bring the group in line.
    MembershipChanged {
        conversation: Uuid,
    },
    Removed {
        conversation: Uuid,
    },
    /// A message was recalled: its content is gone from this device.
    Recalled {
        conversation: Uuid,
        message: Uuid,
    },
    /// An urgent or STAT message waits for acknowledgement (escalation).
    Alert {
        conversation: Uuid,
        alert: AlertNotice,
    },
    /// A device this one has not seen before was registered to the same
    /// account (if that was not the user, the account is compromised).
    NewDevice {
        device: Uuid,
        name: String,
    },
    /// An entry could not be applied (forged, replayed, or for a group this
    /// device is not in); it is skipped, never retried.
    Rejected {
        conversation: Uuid,
        message_id: Uuid,
        reason: String,
    },
}

/// The serializable part of a device's state.
#[derive(Serialize, Deserialize)]
struct Persisted {
    user: Uuid,
    device: Uuid,
    identity_key: Vec<u8>,
    cursor: i64,
    conversations: BTreeMap<Uuid, LocalConversation>,
    outbox: Vec<Outgoing>,
    seen: BTreeSet<Uuid>,
    #[serde(default)]
    known_devices: BTreeSet<Uuid>,
    mls: Vec<(Vec<u8>, Vec<u8>)>,
    #[serde(default)]
    server_time: i64,
    #[serde(default)]
    device_policy: Option<DevicePolicy>,
    #[serde(default)]
    directory: BTreeMap<Uuid, String>,
    #[serde(default)]
    receipts: BTreeMap<Uuid, (i64, MessageReceipts)>,
    #[serde(default)]
    shown: BTreeMap<Uuid, Uuid>,
    #[serde(default)]
    patient_keys: BTreeMap<Uuid, String>,
}

/// Receipts kept for reading offline: the most recently fetched this many.
const KEPT_RECEIPTS: usize = 200;

pub struct ChatCore {
    pub mls: MlsDevice,
    /// Highest inbox position applied (and saved).
    pub cursor: i64,
    pub conversations: BTreeMap<Uuid, LocalConversation>,
    pub outbox: Vec<Outgoing>,
    seen: BTreeSet<Uuid>,
    /// The account's devices this device knows of (to point out new ones).
    known_devices: BTreeSet<Uuid>,
    /// The latest server time seen: expiry never goes by an earlier clock.
    server_time: i64,
    /// The organisation's device policy, as last fetched.
    pub device_policy: Option<DevicePolicy>,
    /// Colleagues' display names by user id, as last fetched: senders and
    /// readers are named offline too.
    pub directory: BTreeMap<Uuid, String>,
    /// Messages' receipts as last fetched, with the server time they were
    /// fetched at (the newest [`KEPT_RECEIPTS`]), for reading offline.
    receipts: BTreeMap<Uuid, (i64, MessageReceipts)>,
    /// Per conversation, the newest message shown to the person: unread
    /// counts run from there (the web app's list).
    pub shown: BTreeMap<Uuid, Uuid>,
    /// Keys (the link's `k=` fragment) of the secure messages to patients
    /// this device sealed, by message id: only the writer's device and the
    /// patient can open them (`patients.secure_messages`), and this is
    /// where the writer's copy of the key lives (the CLI keeps its own
    /// file, `patient_keys`).
    pub patient_keys: BTreeMap<Uuid, String>,
}

/// Devices a group must gain or lose to match the server's membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<Uuid>,
    pub remove: Vec<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Mls(#[from] MlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The device policy or the message's state does not allow it; the
    /// wording is for the person.
    #[error("{0}")]
    Refused(String),
}

impl ChatCore {
    pub fn new(user: Uuid, device: Uuid) -> Result<ChatCore, CoreError> {
        Ok(ChatCore {
            mls: MlsDevice::generate(user, device)?,
            cursor: 0,
            conversations: BTreeMap::new(),
            outbox: Vec::new(),
            seen: BTreeSet::new(),
            known_devices: BTreeSet::from([device]),
            server_time: 0,
            device_policy: None,
            directory: BTreeMap::new(),
            receipts: BTreeMap::new(),
            shown: BTreeMap::new(),
            patient_keys: BTreeMap::new(),
        })
    }

    /// Keeps a message's receipts as fetched at `at` (server time).
    pub fn keep_receipts(&mut self, r: MessageReceipts, at: i64) {
        self.receipts.insert(r.message_id, (at, r));
        while self.receipts.len() > KEPT_RECEIPTS {
            let oldest = self
                .receipts
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(id, _)| *id)
                .expect("not empty");
            self.receipts.remove(&oldest);
        }
    }

    /// A message's receipts as last fetched, and when.
    pub fn kept_receipts(&self, message: Uuid) -> Option<&(i64, MessageReceipts)> {
        self.receipts.get(&message)
    }

    /// The whole state, encrypted under `key` (see [`store`]).
    pub fn seal(&self, key: &SealedStateKey) -> Vec<u8> {
        self.seal_as(key, store::CONTEXT)
    }

    /// As [`ChatCore::seal`], bound to `context` (where the sealed state is
    /// kept, so a record can never be passed off as another).
    pub fn seal_as(&self, key: &SealedStateKey, context: &[u8]) -> Vec<u8> {
        let p = Persisted {
            user: self.mls.user,
            device: self.mls.device,
            identity_key: self.mls.identity_key(),
            cursor: self.cursor,
            conversations: self.conversations.clone(),
            outbox: self.outbox.clone(),
            seen: self.seen.clone(),
            known_devices: self.known_devices.clone(),
            mls: self.mls.export(),
            server_time: self.server_time,
            device_policy: self.device_policy.clone(),
            directory: self.directory.clone(),
            receipts: self.receipts.clone(),
            shown: self.shown.clone(),
            patient_keys: self.patient_keys.clone(),
        };
        let json = Zeroizing::new(serde_json::to_vec(&p).expect("state serialises"));
        key.seal_as(context, &json)
    }

    pub fn open(sealed: &[u8], key: &SealedStateKey) -> Result<ChatCore, CoreError> {
        Self::open_as(sealed, key, store::CONTEXT)
    }

    /// Opens what [`ChatCore::seal_as`] sealed with the same `context`.
    pub fn open_as(
        sealed: &[u8],
        key: &SealedStateKey,
        context: &[u8],
    ) -> Result<ChatCore, CoreError> {
        let json = key.open_as(context, sealed)?;
        let p: Persisted = serde_json::from_slice(&json)
            .map_err(|e| StoreError::Corrupt(format!("state: {e}")))?;
        Ok(ChatCore {
            mls: MlsDevice::restore(p.user, p.device, &p.identity_key, p.mls)?,
            cursor: p.cursor,
            conversations: p.conversations,
            outbox: p.outbox,
            seen: p.seen,
            known_devices: p.known_devices,
            server_time: p.server_time,
            device_policy: p.device_policy,
            directory: p.directory,
            receipts: p.receipts,
            shown: p.shown,
            patient_keys: p.patient_keys,
        })
    }

    pub fn registration(
        &self,
        name: &str,
        key_packages: usize,
    ) -> Result<RegisterDeviceRequest, CoreError> {
        let (kps, lr) = self.mls.key_packages(key_packages)?;
        Ok(RegisterDeviceRequest {
            name: name.to_owned(),
            identity_key: B64(self.mls.identity_key()),
            key_packages: kps.into_iter().map(B64).collect(),
            last_resort: B64(lr),
        })
    }

    pub fn more_key_packages(&self, n: usize) -> Result<UploadKeyPackagesRequest, CoreError> {
        let (kps, _) = self.mls.key_packages(n)?;
        Ok(UploadKeyPackagesRequest {
            key_packages: kps.into_iter().map(B64).collect(),
            last_resort: None,
        })
    }

    /// The account's devices as this one found them on registering (the
    /// list fetched right after): not news to it — they are told of it, not
    /// it of them. Call once, after registration.
    pub fn know_devices(&mut self, devices: &DeviceList) {
        self.known_devices
            .extend(devices.devices.iter().map(|d| d.id));
    }

    /// Compares the account's device list with the ones seen before; new
    /// ones are events (and known from then on).
    pub fn check_devices(&mut self, devices: &DeviceList) -> Vec<Event> {
        let mut events = Vec::new();
        for d in &devices.devices {
            if self.known_devices.insert(d.id) {
                events.push(Event::NewDevice {
                    device: d.id,
                    name: d.name.clone(),
                });
            }
        }
        events
    }

    /// Keeps the server's view of a conversation (title, members).
    pub fn update_conversation(&mut self, c: &Conversation) {
        let local = self
            .conversations
            .entry(c.id)
            .or_insert_with(|| LocalConversation {
                id: c.id,
                ..Default::default()
            });
        local.title = c.title.clone();
        local.patient_ref = c.patient_ref.clone();
        local.members = c.members.clone();
        local.lifecycle = Some(c.lifecycle);
    }

    /// This person left `conv` (the server has taken them out): the group's
    /// keys are forgotten, messages still waiting to go there are dropped,
    /// and the conversation stays in the list, closed, with its history.
    pub fn left(&mut self, conv: Uuid) -> Result<(), CoreError> {
        self.mls.forget_group(conv)?;
        self.outbox.retain(|o| o.conversation != conv);
        if let Some(c) = self.conversations.get_mut(&conv) {
            c.closed = true;
        }
        Ok(())
    }

    /// Members of `conv` (as the server last said) with no device in its
    /// group: what is sent now does not reach them until a device of theirs
    /// joins and is given the recent history. The sender is told.
    pub fn unreached_members(&mut self, conv: Uuid) -> Vec<Uuid> {
        if !self.mls.has_group(conv) {
            return Vec::new();
        }
        let in_group: BTreeSet<Uuid> = self
            .mls
            .members(conv)
            .map(|m| m.into_iter().map(|(u, _)| u).collect())
            .unwrap_or_default();
        let Some(c) = self.conversations.get(&conv) else {
            return Vec::new();
        };
        c.members
            .iter()
            .copied()
            .filter(|u| !in_group.contains(u))
            .collect()
    }

    /// Days since this device last reached the server, if that is more than
    /// the device policy allows offline (the store then opens only online).
    pub fn offline_too_long(&self, device_now: i64) -> Option<i64> {
        let max = self.device_policy.as_ref()?.max_offline_days?;
        let days = (device_now - self.server_time) / 86_400;
        (self.server_time > 0 && days >= max).then_some(days)
    }

    /// The latest server time seen.
    pub fn server_time(&self) -> i64 {
        self.server_time
    }

    /// Remembers the server's clock (never moving back).
    pub fn saw_server_time(&mut self, t: i64) {
        self.server_time = self.server_time.max(t);
    }

    /// Deletes local copies whose lifespan or retention has ended, by the
    /// later of `device_now` and the last server time seen. Returns how many.
    pub fn expire(&mut self, device_now: i64) -> usize {
        let now = device_now.max(self.server_time);
        let mut gone = 0;
        for c in self.conversations.values_mut() {
            let retention = c.lifecycle.and_then(|l| l.retention.secs());
            let before = c.messages.len();
            c.messages.retain(|m| {
                let expired = m.expires_at.is_some_and(|e| e <= now);
                let past_retention = retention.is_some_and(|r| m.sent_at + r <= now);
                !(expired || past_retention)
            });
            gone += before - c.messages.len();
        }
        gone
    }

    /// Applies one inbox entry. Entries already applied are ignored.
    pub fn apply(&mut self, e: &InboxEntry) -> Vec<Event> {
        if e.seq <= self.cursor {
            return Vec::new();
        }
        self.cursor = e.seq;
        if !self.seen.insert(e.message_id) {
            return Vec::new();
        }
        let conversation = e.conversation_id;
        let reject = |reason: String| {
            vec![Event::Rejected {
                conversation,
                message_id: e.message_id,
                reason,
            }]
        };
        match (e.kind, &e.mls) {
            (MessageKind::Membership, _) => vec![Event::MembershipChanged { conversation }],
            (MessageKind::History, _) => {
                let Some(h) = e.history else {
                    return reject("history request without whom it is for".into());
                };
                self.share_history(conversation, h.since);
                Vec::new()
            }
            (MessageKind::Alert, _) => {
                let Some(alert) = e.alert.as_deref().cloned() else {
                    return reject("alert without what it is about".into());
                };
                if !alert.added.is_empty() {
                    self.share_again(conversation, alert.message_id);
                }
                vec![Event::Alert {
                    conversation,
                    alert,
                }]
            }
            (MessageKind::Recall, _) => {
                let Some(message) = e.recalls else {
                    return reject("recall without the message it recalls".into());
                };
                // Copies of it waiting to be shared again are not sent.
                self.outbox.retain(|o| {
                    o.conversation != conversation || o.content.shared_again != Some(message)
                });
                let c = self.conversations.entry(conversation).or_default();
                c.id = conversation;
                match c.messages.iter_mut().find(|m| m.id == message) {
                    Some(m) => {
                        m.content = MessageContent::default();
                        m.recalled_at = Some(e.created_at);
                    }
                    // Recalled before this device fetched it: the server never
                    // hands it out now; only the placeholder is shown.
                    None => {
                        self.seen.insert(message);
                    }
                }
                vec![Event::Recalled {
                    conversation,
                    message,
                }]
            }
            (MessageKind::Welcome, Some(body)) => match self.mls.join(&body.0) {
                Ok(conv) if conv == conversation => {
                    let c = self.conversations.entry(conv).or_default();
                    c.id = conv;
                    c.closed = false;
                    vec![Event::Joined { conversation }]
                }
                Ok(_) => reject("Welcome for another group than its conversation".into()),
                Err(err) => reject(err.to_string()),
            },
            (MessageKind::Commit | MessageKind::Application, Some(body)) => {
                match self.mls.process(conversation, &body.0) {
                    Ok(Incoming::Application {
                        user,
                        device,
                        plaintext,
                    }) => {
                        let Some(content) = MessageContent::from_bytes(&plaintext) else {
                            return reject("content is not a Wardline message".into());
                        };
                        // Shared again for newcomers, it is the original: its
                        // id (to acknowledge, recall, reply to), time and
                        // priority. The sender says which (MLS authenticates
                        // it), the server vouches that it is theirs and when
                        // it was sent; both must agree.
                        let (id, sent_at) = match (content.shared_again, e.shared_again) {
                            (None, None) => (e.message_id, e.created_at),
                            (Some(named), Some(o)) if named == o.message_id => {
                                (o.message_id, o.created_at)
                            }
                            // A copy from before the server vouched for
                            // originals: shown as the copy it is.
                            (Some(_), None) => (e.message_id, e.created_at),
                            _ => {
                                return reject(
                                    "the message's original and the server's disagree".into(),
                                );
                            }
                        };
                        // Those who have it already keep the one copy.
                        if let Some(first) = content.shared_again
                            && self.conversations.get(&conversation).is_some_and(|c| {
                                c.messages
                                    .iter()
                                    .any(|m| m.id == first || m.content.shared_again == Some(first))
                            })
                        {
                            return Vec::new();
                        }
                        let message = LocalMessage {
                            id,
                            sender_user: user,
                            sender_device: device,
                            content,
                            priority: e.priority,
                            sent_at,
                            mine: user == self.mls.user,
                            expires_at: e.expires_at,
                            recalled_at: None,
                        };
                        let c = self.conversations.entry(conversation).or_default();
                        c.id = conversation;
                        // The timeline is in sending order: an original shared
                        // again goes where it was sent, not where it arrived.
                        let at = c.messages.partition_point(|m| m.sent_at <= message.sent_at);
                        c.messages.insert(at, message.clone());
                        vec![Event::Message {
                            conversation,
                            message,
                        }]
                    }
                    Ok(Incoming::Commit {
                        removed_self: true, ..
                    }) => {
                        if let Some(c) = self.conversations.get_mut(&conversation) {
                            c.closed = true;
                        }
                        vec![Event::Removed { conversation }]
                    }
                    Ok(Incoming::Commit { added, removed, .. }) => {
                        let change = GroupChange {
                            at: e.created_at,
                            by: e.sender_user,
                            added,
                            removed,
                        };
                        let c = self.conversations.entry(conversation).or_default();
                        c.id = conversation;
                        c.changes.push(change.clone());
                        vec![Event::Commit {
                            conversation,
                            change,
                        }]
                    }
                    Ok(Incoming::Proposal) => Vec::new(),
                    Err(err) => reject(err.to_string()),
                }
            }
            _ => reject("entry without a body".into()),
        }
    }

    /// What the group must change to match the server's view.
    pub fn plan(&mut self, c: &Conversation) -> Result<Plan, CoreError> {
        if !self.mls.has_group(c.id) {
            return Ok(Plan::default());
        }
        let in_group: BTreeSet<Uuid> = self
            .mls
            .members(c.id)?
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let mut plan = Plan::default();
        for d in &c.devices {
            match d.state {
                DeviceState::PendingAdd if !in_group.contains(&d.device_id) => {
                    plan.add.push(d.device_id)
                }
                DeviceState::PendingRemove if in_group.contains(&d.device_id) => {
                    plan.remove.push(d.device_id)
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    /// A commit removing `devices` (pending until accepted or refused).
    pub fn commit_remove(
        &mut self,
        conv: Uuid,
        devices: &[Uuid],
    ) -> Result<SubmitMessageRequest, CoreError> {
        let commit = self.mls.remove(conv, devices)?;
        Ok(SubmitMessageRequest {
            message_id: Uuid::new_v4(),
            kind: MessageKind::Commit,
            mls: B64(commit),
            priority: Priority::Routine,
            welcome: None,
            added_devices: Vec::new(),
            removed_devices: devices.to_vec(),
            ttl_secs: None,
            shared_again: None,
        })
    }

    /// A commit adding the devices of the claimed key packages, with their Welcome.
    pub fn commit_add(
        &mut self,
        conv: Uuid,
        claimed: &[ClaimedKeyPackage],
    ) -> Result<SubmitMessageRequest, CoreError> {
        let kps: Vec<Vec<u8>> = claimed.iter().map(|k| k.key_package.0.clone()).collect();
        let (commit, welcome) = self.mls.add(conv, &kps)?;
        Ok(SubmitMessageRequest {
            message_id: Uuid::new_v4(),
            kind: MessageKind::Commit,
            mls: B64(commit),
            priority: Priority::Routine,
            welcome: Some(B64(welcome)),
            added_devices: claimed.iter().map(|k| k.device_id).collect(),
            removed_devices: Vec::new(),
            ttl_secs: None,
            shared_again: None,
        })
    }

    /// The server accepted this device's pending commit: merge it and record
    /// the membership change it made.
    pub fn commit_accepted(&mut self, conv: Uuid, at: i64) -> Result<(), CoreError> {
        let (added, removed) = self.mls.merge_pending(conv)?;
        let c = self.conversations.entry(conv).or_default();
        c.id = conv;
        c.changes.push(GroupChange {
            at,
            by: Some(self.mls.user),
            added,
            removed,
        });
        Ok(())
    }

    /// Puts a message in the outbox (with a lifespan if `ttl_secs`); returns its id.
    pub fn queue(
        &mut self,
        conversation: Uuid,
        content: MessageContent,
        priority: Priority,
        ttl_secs: Option<i64>,
    ) -> Uuid {
        let id = Uuid::new_v4();
        self.outbox.push(Outgoing {
            id,
            conversation,
            content,
            priority,
            encrypted: None,
            ttl_secs,
        });
        id
    }

    /// The message `message` of `conv` as it may be forwarded: refused when
    /// the device policy's `allow_forwarding` is off, or the message is gone,
    /// recalled or itself only a notice. Its attachments must be uploaded
    /// again to the target conversation (each conversation's attachments
    /// are its own on the server) before [`ChatCore::queue_forward`].
    pub fn forwardable(&self, conv: Uuid, message: Uuid) -> Result<&LocalMessage, CoreError> {
        if self
            .device_policy
            .as_ref()
            .is_some_and(|p| !p.allow_forwarding)
        {
            return Err(CoreError::Refused(
                "Your organisation does not allow forwarding messages.".into(),
            ));
        }
        self.conversations
            .get(&conv)
            .and_then(|c| c.messages.iter().find(|m| m.id == message))
            .filter(|m| m.recalled_at.is_none())
            .ok_or_else(|| CoreError::Refused("That message is not here any more.".into()))
    }

    /// Queues a forward of `message` (of `from`) into `to`, with its
    /// attachments as uploaded again there (`attachments`, fresh keys).
    /// Routine priority: a forward informs, the original's escalation is
    /// the original's. Returns the new message's id.
    pub fn queue_forward(
        &mut self,
        from: Uuid,
        message: Uuid,
        to: Uuid,
        attachments: Vec<AttachmentRef>,
    ) -> Result<Uuid, CoreError> {
        if from == to {
            return Err(CoreError::Refused(
                "Choose another conversation to forward to.".into(),
            ));
        }
        let original = self.forwardable(from, message)?;
        let patient_ref = self
            .conversations
            .get(&from)
            .and_then(|c| c.patient_ref.clone());
        let content = MessageContent {
            text: original.content.text.clone(),
            attachments,
            // A forward of a forward names the first writer (and patient).
            forwarded: Some(original.content.forwarded.clone().unwrap_or(Forwarded {
                sender_user: original.sender_user,
                sent_at: original.sent_at,
                patient_ref,
            })),
            ..Default::default()
        };
        Ok(self.queue(to, content, Priority::Routine, None))
    }

    /// Queues a message this device sent, shared again with members an
    /// escalation brought in after it (they cannot decrypt the original).
    /// Only the sending device does it, once; the copy is routine (the
    /// original's escalation goes on).
    fn share_again(&mut self, conversation: Uuid, message: Uuid) {
        let Some(m) = self.conversations.get(&conversation).and_then(|c| {
            c.messages.iter().find(|m| {
                m.id == message
                    && m.mine
                    && m.sender_device == self.mls.device
                    && m.recalled_at.is_none()
            })
        }) else {
            return;
        };
        if m.expires_at.is_some_and(|e| e <= self.server_time) {
            return;
        }
        let mut content = m.content.clone();
        content.shared_again = Some(message);
        let ttl = m.expires_at.map(|e| (e - self.server_time).max(60));
        self.queue(conversation, content, Priority::Routine, ttl);
    }

    /// Queues this device's own recent messages of a conversation (since
    /// `since`, the latest 50), shared again for someone who joined it.
    fn share_history(&mut self, conversation: Uuid, since: i64) {
        let Some(c) = self.conversations.get(&conversation) else {
            return;
        };
        let mine: Vec<Uuid> = c
            .messages
            .iter()
            .filter(|m| {
                m.mine
                    && m.sender_device == self.mls.device
                    && m.sent_at >= since
                    && m.recalled_at.is_none()
                    && m.content.shared_again.is_none()
            })
            .map(|m| m.id)
            .collect();
        let skip = mine.len().saturating_sub(50);
        for id in mine.into_iter().skip(skip) {
            self.share_again(conversation, id);
        }
    }

    /// The outbox's first message, ready for submission (see
    /// [`ChatCore::encrypt_at`]).
    pub fn encrypt_next(&mut self) -> Option<Result<SubmitMessageRequest, CoreError>> {
        self.encrypt_at(0)
    }

    /// Which outbox entry goes next, skipping conversations in `blocked`:
    /// each conversation's messages keep their order, conversations do not
    /// wait for each other (finding M9 of 2026-11-30: one message to a
    /// conversation not joined yet held back every other), and of the
    /// conversations' first messages the most urgent goes first (a STAT is
    /// never behind a routine message elsewhere), then the oldest.
    pub fn next_to_send(&self, blocked: &BTreeSet<Uuid>) -> Option<usize> {
        let mut heads: Vec<usize> = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, o) in self.outbox.iter().enumerate() {
            if !blocked.contains(&o.conversation) && seen.insert(o.conversation) {
                heads.push(i);
            }
        }
        heads
            .into_iter()
            .max_by_key(|i| (self.outbox[*i].priority, std::cmp::Reverse(*i)))
    }

    /// Outbox entry `i`, ready for submission: its earlier ciphertext if an
    /// attempt was made (see the module's invariants), otherwise encrypted
    /// now (save the state before sending it). Take `i` from
    /// [`ChatCore::next_to_send`], so a conversation's order is kept.
    pub fn encrypt_at(&mut self, i: usize) -> Option<Result<SubmitMessageRequest, CoreError>> {
        let out = self.outbox.get(i)?.clone();
        let mls = match out.encrypted {
            Some(bytes) => bytes,
            None => match self.mls.encrypt(out.conversation, &out.content.to_bytes()) {
                Ok(bytes) => {
                    self.outbox[i].encrypted = Some(B64(bytes.clone()));
                    B64(bytes)
                }
                Err(e) => return Some(Err(e.into())),
            },
        };
        Some(Ok(SubmitMessageRequest {
            message_id: out.id,
            kind: MessageKind::Application,
            mls,
            priority: out.priority,
            welcome: None,
            added_devices: Vec::new(),
            removed_devices: Vec::new(),
            ttl_secs: out.ttl_secs,
            shared_again: out.content.shared_again,
        }))
    }

    /// The server stored nothing of the first message's last attempt (its
    /// epoch is past): the next attempt encrypts it afresh.
    pub fn reencrypt_next(&mut self) {
        self.reencrypt_at(0);
    }

    /// As [`ChatCore::reencrypt_next`], for outbox entry `i`.
    pub fn reencrypt_at(&mut self, i: usize) {
        if let Some(out) = self.outbox.get_mut(i) {
            out.encrypted = None;
        }
    }

    /// The server accepted the outbox's first message.
    pub fn sent_next(&mut self, at: i64, expires_at: Option<i64>) -> Option<LocalMessage> {
        self.sent_at(0, at, expires_at)
    }

    /// The server accepted outbox entry `i`.
    pub fn sent_at(&mut self, i: usize, at: i64, expires_at: Option<i64>) -> Option<LocalMessage> {
        if i >= self.outbox.len() {
            return None;
        }
        let out = self.outbox.remove(i);
        self.seen.insert(out.id);
        // A copy shared again for newcomers: this device holds the original.
        if let Some(original) = out.content.shared_again {
            return self
                .conversations
                .get(&out.conversation)
                .and_then(|c| c.messages.iter().find(|m| m.id == original))
                .cloned();
        }
        let m = LocalMessage {
            id: out.id,
            sender_user: self.mls.user,
            sender_device: self.mls.device,
            content: out.content,
            priority: out.priority,
            sent_at: at,
            mine: true,
            expires_at,
            recalled_at: None,
        };
        let c = self.conversations.entry(out.conversation).or_default();
        c.id = out.conversation;
        c.messages.push(m.clone());
        Some(m)
    }

    /// Drops the outbox's first message (its conversation is closed to us).
    pub fn drop_next(&mut self) -> Option<Outgoing> {
        self.drop_at(0)
    }

    /// Drops outbox entry `i`.
    pub fn drop_at(&mut self, i: usize) -> Option<Outgoing> {
        (i < self.outbox.len()).then(|| self.outbox.remove(i))
    }
}

pub use store::derive_key;

#[cfg(test)]
mod tests {
    use super::*;

    /// A device holding one conversation with one message from a colleague.
    fn device_with_a_message() -> (ChatCore, Uuid, Uuid, Uuid) {
        let mut core = ChatCore::new(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let (conv, other, message) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let colleague = Uuid::new_v4();
        core.conversations.insert(
            conv,
            LocalConversation {
                id: conv,
                patient_ref: Some("MRN-0042".into()),
                messages: vec![LocalMessage {
                    id: message,
                    sender_user: colleague,
                    sender_device: Uuid::new_v4(),
                    content: MessageContent::text("K+ 6.1, repeat drawn"),
                    priority: Priority::Urgent,
                    sent_at: 1_780_000_000,
                    mine: false,
                    expires_at: None,
                    recalled_at: None,
                }],
                ..Default::default()
            },
        );
        (core, conv, other, message)
    }

    #[test]
    fn a_forward_names_the_first_writer_and_goes_routine() {
        let (mut core, conv, other, message) = device_with_a_message();
        let id = core
            .queue_forward(conv, message, other, Vec::new())
            .unwrap();
        let queued = core.outbox.iter().find(|o| o.id == id).unwrap();
        assert_eq!(queued.conversation, other);
        assert_eq!(queued.priority, Priority::Routine);
        assert_eq!(queued.content.text, "K+ 6.1, repeat drawn");
        let original = &core.conversations[&conv].messages[0];
        assert_eq!(
            queued.content.forwarded,
            Some(Forwarded {
                sender_user: original.sender_user,
                sent_at: original.sent_at,
                // Which patient it is about goes with it.
                patient_ref: Some("MRN-0042".into()),
            })
        );
        // Not into the conversation it came from.
        assert!(matches!(
            core.queue_forward(conv, message, conv, Vec::new()),
            Err(CoreError::Refused(_))
        ));
    }

    #[test]
    fn forwarding_follows_the_device_policy_and_the_message() {
        let (mut core, conv, other, message) = device_with_a_message();
        core.device_policy = Some(DevicePolicy {
            allow_forwarding: false,
            ..Default::default()
        });
        let refused = core.queue_forward(conv, message, other, Vec::new());
        assert_eq!(
            refused.unwrap_err().to_string(),
            "Your organisation does not allow forwarding messages."
        );
        assert!(core.outbox.is_empty());
        core.device_policy = Some(DevicePolicy::default());
        core.conversations.get_mut(&conv).unwrap().messages[0].recalled_at = Some(1_780_000_100);
        assert!(matches!(
            core.forwardable(conv, message),
            Err(CoreError::Refused(_))
        ));
        assert!(core.forwardable(conv, Uuid::new_v4()).is_err());
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;

    fn device(id: Uuid, created_at: i64) -> Device {
        Device {
            id,
            user_id: Uuid::nil(),
            name: format!("device made at {created_at}"),
            identity_key: B64(vec![1; 32]),
            created_at,
            key_packages_available: 20,
            has_last_resort: true,
        }
    }

    /// A new device is not told of the devices that were there when it
    /// registered; a device registered later is news once.
    #[test]
    fn only_devices_registered_later_are_news() {
        let mut core = ChatCore::new(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let (older, newer) = (Uuid::new_v4(), Uuid::new_v4());
        let mut list = DeviceList {
            devices: vec![device(older, 1_000), device(core.mls.device, 2_000)],
        };
        core.know_devices(&list);
        assert!(core.check_devices(&list).is_empty());
        list.devices.push(device(newer, 3_000));
        let news = core.check_devices(&list);
        assert!(
            matches!(news.as_slice(), [Event::NewDevice { device, .. }] if *device == newer),
            "{news:?}"
        );
        assert!(core.check_devices(&list).is_empty());
    }
}
