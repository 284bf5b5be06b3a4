//! The chat core driven over the network: HTTP for sync, submission and
//! membership, the sync WebSocket for real-time delivery, and the sealed local
//! store in a file. This is what `wardline chat …` and the tests use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;
use wardline_proto::ErrorCode;
use wardline_proto::messaging::*;
use wardline_proto::sync::{ClientFrame, InboxEntry, ServerFrame};

use crate::api::{ApiClient, ClientError};
use crate::core::{ChatCore, CoreError, Event, MessageContent, SealedStateKey, derive_key};
use crate::profile::write_private;

/// Key packages uploaded at registration and whenever stock runs low.
const KEY_PACKAGE_BATCH: usize = 20;
const KEY_PACKAGE_LOW_WATER: i64 = 5;
/// Commits and sends retried after losing an epoch race, before giving up.
const MAX_ATTEMPTS: usize = 8;
/// How often (in server time) conversations' retention and lifespans are
/// fetched again, so that a policy change reaches local copies.
const LIFECYCLE_REFRESH_SECS: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("local store {0}: {1}")]
    Io(String, std::io::Error),
    #[error("WebSocket: {0}")]
    Socket(String),
    #[error("{0}")]
    State(String),
    /// The device has not reached the server for longer than the device
    /// policy allows; the store opens again once the server is reachable.
    #[error(
        "this device has not reached the server for {days} days (the organisation allows fewer offline); connect to open its messages"
    )]
    Locked { days: i64 },
    /// The device was reported lost: its local store and keys were erased
    /// (and the erasure confirmed to the server, if it answered).
    #[error("this device was reported lost and has been wiped: its local store and keys are erased{}", if *.confirmed { " (confirmed to the server)" } else { "" })]
    Wiped { confirmed: bool },
    /// The server refused the message just sent for good; it is out of the
    /// outbox (see [`Chat::refused`]).
    #[error("the server refused the message: {message}")]
    Refused {
        code: Option<ErrorCode>,
        message: String,
    },
}

impl ChatError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ChatError::Api(e) => e.code(),
            ChatError::Refused { code, .. } => *code,
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ChatError>;

/// The sync WebSocket: JSON [`ServerFrame`]s in, [`ClientFrame`]s out.
pub type SyncSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long opening a device's store waits for another process using it.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The exclusive OS lock on a device's store (`<store>.lock`): one writer per
/// device. Dropped, it is released (also when the process dies).
#[derive(Debug)]
struct StoreLock(#[allow(dead_code)] std::fs::File);

impl StoreLock {
    /// Waits (up to [`LOCK_WAIT`]) for another process that holds it.
    async fn acquire(store: &Path) -> Result<StoreLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = lock_path(store);
        let io = |e| ChatError::Io(path.display().to_string(), e);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StoreLock(file)),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(ChatError::State(format!(
                        "another process is using this device's message store ({}) and has not let go for {} s",
                        store.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
    }
}

/// `<store>.lock`, next to the store.
fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn fingerprint(sealed: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(sealed).into()
}

pub struct Chat {
    pub api: ApiClient,
    pub core: ChatCore,
    path: PathBuf,
    key: SealedStateKey,
    /// Held while this object may write the store; [`Chat::watch`] lets go
    /// while it waits, so other commands on the device can run meanwhile.
    lock: Option<StoreLock>,
    /// Fingerprint of the store as this object last read or wrote it: a save
    /// over a store someone else changed is refused, never done.
    on_disk: std::sync::Mutex<Option<[u8; 32]>>,
    /// Server time of the last refresh of conversations' lifecycle.
    lifecycle_checked: Option<i64>,
    /// Conversations whose outbox messages the last [`Chat::flush`] could
    /// not send yet, and why.
    pub waiting: BTreeMap<Uuid, Waiting>,
    /// Outbox messages the server refused for good (too large, not allowed,
    /// not valid) since this object was opened: taken out of the outbox so
    /// the ones after them go, and reported here with the server's reason —
    /// an outbox never jams in silence.
    pub refused: Vec<Refused>,
}

/// An outbox message the server will never accept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: Uuid,
    pub conversation: Uuid,
    pub code: Option<ErrorCode>,
    pub reason: String,
}

/// Why a conversation's messages wait in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// This device is not in the conversation's MLS group yet: a member's
    /// device must add it (its Welcome has not arrived).
    NotJoined,
    /// A membership change keeps being pending; tried again at the next sync.
    MembershipChanging,
    /// No member device is left to add this one (all were removed or
    /// wiped): [`Chat::refound`] starts the group again from this device.
    Orphaned,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiting::NotJoined => {
                "this device has not joined the conversation yet (a member's device must add it)"
            }
            Waiting::MembershipChanging => {
                "a membership change in the conversation is still pending"
            }
            Waiting::Orphaned => {
                "no member device is left to add this one; start the conversation again from this device (`wardline chat refound`)"
            }
        })
    }
}

impl Chat {
    /// Opens this device's local store at `path`, unlocking it with
    /// `passphrase`. On first use, creates the device's identity and registers
    /// it with the server.
    pub async fn open(
        api: ApiClient,
        path: &Path,
        passphrase: &str,
        user: Uuid,
        device: Uuid,
        device_name: &str,
    ) -> Result<Chat> {
        Self::open_as(api, path, passphrase, Some(user), device, device_name).await
    }

    /// As [`Chat::open`]; `user` may be unknown (offline) when the store exists.
    pub async fn open_as(
        api: ApiClient,
        path: &Path,
        passphrase: &str,
        user: Option<Uuid>,
        device: Uuid,
        device_name: &str,
    ) -> Result<Chat> {
        // One writer per device: taken before the store is read.
        let lock = StoreLock::acquire(path).await?;
        match std::fs::read(path) {
            Ok(sealed) => {
                let key = derive_key(passphrase, Some(&sealed)).map_err(CoreError::from)?;
                let mut core = ChatCore::open(&sealed, &key)?;
                if user.is_none()
                    && let Some(days) = core.offline_too_long(unix_now())
                {
                    return Err(ChatError::Locked { days });
                }
                // Offline too: what expired is deleted before anything is shown.
                core.expire(unix_now());
                if user.is_some_and(|u| u != core.mls.user) || core.mls.device != device {
                    return Err(ChatError::State(format!(
                        "{} belongs to another user or device",
                        path.display()
                    )));
                }
                Ok(Chat {
                    api,
                    core,
                    path: path.to_owned(),
                    key,
                    lock: Some(lock),
                    on_disk: std::sync::Mutex::new(Some(fingerprint(&sealed))),
                    lifecycle_checked: None,
                    waiting: BTreeMap::new(),
                    refused: Vec::new(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let user = user.ok_or_else(|| {
                    ChatError::State("the first use of a device needs the server".into())
                })?;
                // The organisation's device policy says how strong the PIN must be.
                let policy = api.device_status().await?.policy;
                let pin = passphrase.chars().count() as i64;
                if policy.require_local_pin && pin < policy.min_pin_length {
                    return Err(ChatError::State(format!(
                        "the organisation requires a PIN or passphrase of at least {} characters for this device's store",
                        policy.min_pin_length
                    )));
                }
                let mut core = ChatCore::new(user, device)?;
                core.device_policy = Some(policy);
                let key = derive_key(passphrase, None).map_err(CoreError::from)?;
                let registration = core.registration(device_name, KEY_PACKAGE_BATCH)?;
                let mut chat = Chat {
                    api,
                    core,
                    path: path.to_owned(),
                    key,
                    lock: Some(lock),
                    on_disk: std::sync::Mutex::new(None),
                    lifecycle_checked: None,
                    waiting: BTreeMap::new(),
                    refused: Vec::new(),
                };
                // The key packages' private keys are on disk before the server
                // can hand them out.
                chat.save()?;
                match chat.api.register_device(&registration).await {
                    Ok(_) => {
                        // The devices already there are not news to this one.
                        if let Ok(mine) = chat.api.my_devices().await {
                            chat.core.know_devices(&mine);
                            chat.save()?;
                        }
                        Ok(chat)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(path);
                        if e.code() == Some(ErrorCode::Conflict) {
                            return Err(ChatError::State(
                                "this device is registered already but its local store is gone; sign in again as a new device".into(),
                            ));
                        }
                        Err(e.into())
                    }
                }
            }
            Err(e) => Err(ChatError::Io(path.display().to_string(), e)),
        }
    }

    /// Erases the local store (overwritten, then removed) after the server
    /// said this device was wiped, and confirms with the ended session.
    async fn erase_and_confirm(&mut self) -> ChatError {
        // The in-memory state (MLS keys included) goes with this object; make
        // it useless now in case the caller keeps it.
        self.core.conversations.clear();
        self.core.outbox.clear();
        erase_device(&self.api, &self.path).await
    }

    /// Turns the server's wipe order into the erasure it asks for.
    async fn obey_wipe<T>(&mut self, r: Result<T>) -> Result<T> {
        match r {
            Err(e) if e.code() == Some(ErrorCode::DeviceWiped) => {
                Err(self.erase_and_confirm().await)
            }
            r => r,
        }
    }

    /// Seals the state to the store. Refused, with nothing written, when this
    /// object does not hold the store's lock or the store changed since it
    /// last read or wrote it (another writer): a stale copy never overwrites
    /// newer state.
    pub fn save(&self) -> Result<()> {
        let io = |e| ChatError::Io(self.path.display().to_string(), e);
        if self.lock.is_none() {
            return Err(ChatError::State(
                "the message store is saved only by the process holding its lock".into(),
            ));
        }
        let mut on_disk = self.on_disk.lock().unwrap_or_else(|p| p.into_inner());
        let now = match std::fs::read(&self.path) {
            Ok(bytes) => Some(fingerprint(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        if now != *on_disk {
            return Err(ChatError::State(format!(
                "the message store {} was changed by another writer since this process read it; \
                 nothing was overwritten (run the command again)",
                self.path.display()
            )));
        }
        let sealed = self.core.seal(&self.key);
        write_private(&self.path, &sealed).map_err(io)?;
        *on_disk = Some(fingerprint(&sealed));
        Ok(())
    }

    /// Lets go of the store so that other processes on this device can use
    /// it; [`Chat::relock`] takes it back.
    fn unlock(&mut self) {
        self.lock = None;
    }

    /// Lets go of the store's lock while this object waits (a watcher
    /// backing off before it reconnects, for as long as the server is
    /// down), so other commands on the same device run meanwhile;
    /// [`Chat::watch`] takes it back and reloads what they saved. Everything
    /// is saved before the lock is let go.
    pub fn let_go(&mut self) {
        self.unlock();
    }

    /// Takes the store's lock again and, if another process changed the
    /// store meanwhile, reloads the state from it (this object had nothing
    /// unsaved: every change is saved before the lock is let go).
    async fn relock(&mut self) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let lock = StoreLock::acquire(&self.path).await?;
        let sealed = std::fs::read(&self.path)
            .map_err(|e| ChatError::Io(self.path.display().to_string(), e))?;
        let now = fingerprint(&sealed);
        let mut on_disk = self.on_disk.lock().unwrap_or_else(|p| p.into_inner());
        if *on_disk != Some(now) {
            self.core = ChatCore::open(&sealed, &self.key)?;
            *on_disk = Some(now);
        }
        drop(on_disk);
        self.lock = Some(lock);
        Ok(())
    }

    pub fn user(&self) -> Uuid {
        self.core.mls.user
    }

    /// Applies entries, saves, then acknowledges them (never the other way round).
    async fn apply(&mut self, entries: &[InboxEntry]) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for e in entries {
            events.extend(self.core.apply(e));
        }
        self.save()?;
        if let Some(last) = entries.last() {
            self.api.ack(last.seq).await?;
        }
        Ok(events)
    }

    /// Fetches the conversations' titles, members, retention and lifespans,
    /// and deletes local copies the retention now says are past.
    pub async fn refresh_conversations(&mut self) -> Result<()> {
        for c in self.api.conversations().await?.conversations {
            self.core.update_conversation(&c);
        }
        self.core.device_policy = Some(self.api.device_status().await?.policy);
        self.core.expire(unix_now());
        self.save()
    }

    /// Catches up with the inbox over HTTP, then deletes what expired.
    async fn pull(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        loop {
            let page = self.api.sync(self.core.cursor, 200).await?;
            self.core.saw_server_time(page.server_time);
            events.extend(self.apply(&page.entries).await?);
            if !page.more {
                break;
            }
        }
        if self.core.expire(unix_now()) > 0 {
            self.save()?;
        }
        Ok(events)
    }

    /// Catches up, brings groups in line with membership changes, refreshes
    /// joined conversations, sends the outbox, and keeps key packages stocked.
    /// If the server says this device was wiped, erases it (and says so).
    pub async fn sync(&mut self) -> Result<Vec<Event>> {
        let r = self.sync_inner().await;
        self.obey_wipe(r).await
    }

    async fn sync_inner(&mut self) -> Result<Vec<Event>> {
        let mut events = self.pull().await?;
        let now = self.core.server_time();
        if self
            .lifecycle_checked
            .is_none_or(|t| now - t >= LIFECYCLE_REFRESH_SECS)
        {
            self.refresh_conversations().await?;
            self.lifecycle_checked = Some(now);
        }
        let more = self.after_events(&events).await?;
        events.extend(more);
        Ok(events)
    }

    async fn after_events(&mut self, events: &[Event]) -> Result<Vec<Event>> {
        let mut more = self.reconcile_touched(events).await?;
        self.flush().await?;
        more.extend(self.check_devices().await?);
        Ok(more)
    }

    /// Brings in line the groups whose membership the events say changed
    /// (or that this device just joined), each once.
    async fn reconcile_touched(&mut self, events: &[Event]) -> Result<Vec<Event>> {
        let mut touched: Vec<Uuid> = Vec::new();
        for e in events {
            if let Event::MembershipChanged { conversation } | Event::Joined { conversation } = e
                && !touched.contains(conversation)
            {
                touched.push(*conversation);
            }
        }
        let mut more = Vec::new();
        for conv in touched {
            more.extend(self.reconcile(conv).await?);
        }
        Ok(more)
    }

    /// Points out devices newly registered to the account, and keeps this
    /// device's key packages stocked.
    async fn check_devices(&mut self) -> Result<Vec<Event>> {
        let mine = self.api.my_devices().await?;
        let events = self.core.check_devices(&mine);
        if !events.is_empty() {
            self.save()?;
        }
        if let Some(d) = mine.devices.iter().find(|d| d.id == self.core.mls.device)
            && d.key_packages_available < KEY_PACKAGE_LOW_WATER
        {
            let req = self.core.more_key_packages(KEY_PACKAGE_BATCH)?;
            self.save()?;
            self.api.upload_key_packages(&req).await?;
        }
        Ok(events)
    }

    /// Submits a commit made by the core; `Ok(false)` if another device won the
    /// epoch (the commit is dropped and the inbox pulled).
    async fn commit(
        &mut self,
        conv: Uuid,
        req: SubmitMessageRequest,
    ) -> Result<(bool, Vec<Event>)> {
        match self.api.submit(conv, &req).await {
            Ok(r) => {
                self.core.commit_accepted(conv, r.created_at)?;
                self.save()?;
                Ok((true, Vec::new()))
            }
            Err(e) if e.code() == Some(ErrorCode::StaleEpoch) => {
                self.core.mls.clear_pending(conv).map_err(CoreError::from)?;
                let events = self.pull().await?;
                Ok((false, events))
            }
            Err(e) => {
                let _ = self.core.mls.clear_pending(conv);
                Err(e.into())
            }
        }
    }

    /// Makes the conversation's MLS group match the server's membership:
    /// removes the devices of removed members, adds waiting devices.
    pub async fn reconcile(&mut self, conv: Uuid) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let c = match self.api.conversation(conv).await {
                Ok(c) => c,
                // No longer a member: nothing to bring in line.
                Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(events),
                Err(e) => return Err(e.into()),
            };
            self.core.update_conversation(&c);
            let plan = self.core.plan(&c)?;
            if !plan.remove.is_empty() {
                let req = self.core.commit_remove(conv, &plan.remove)?;
                let (_, ev) = self.commit(conv, req).await?;
                events.extend(ev);
                continue;
            }
            if !plan.add.is_empty() {
                let claimed = self.api.claim_key_packages(conv, &plan.add).await?;
                if claimed.key_packages.is_empty() {
                    break;
                }
                let req = self.core.commit_add(conv, &claimed.key_packages)?;
                let (_, ev) = self.commit(conv, req).await?;
                events.extend(ev);
                continue;
            }
            break;
        }
        self.save()?;
        Ok(events)
    }

    /// Starts a conversation: the server records it, this device makes the
    /// group and adds everyone's devices.
    pub async fn create(&mut self, req: &CreateConversationRequest) -> Result<Conversation> {
        let c = self.api.create_conversation(req).await?;
        self.adopt(c).await
    }

    /// Makes the group of a conversation the server just opened with this
    /// device as its first member, and adds everyone else's devices.
    async fn adopt(&mut self, c: Conversation) -> Result<Conversation> {
        let mine = c
            .devices
            .iter()
            .any(|d| d.device_id == self.core.mls.device && d.state == DeviceState::Member);
        if mine && c.epoch == 0 && !self.core.mls.has_group(c.id) {
            self.core.mls.create_group(c.id).map_err(CoreError::from)?;
        }
        self.core.update_conversation(&c);
        self.save()?;
        self.reconcile(c.id).await?;
        Ok(self.api.conversation(c.id).await?)
    }

    /// Starts the conversation's group again from this device, when it is
    /// waiting to join and no member device is left to add it
    /// ([`Waiting::Orphaned`]): the server makes this device the only member
    /// at epoch 0, this device makes a new group, adds everyone's devices, and
    /// sends what waited in the outbox. Earlier messages stay where they were.
    pub async fn refound(&mut self, conv: Uuid) -> Result<Conversation> {
        let c = self.api.refound_conversation(conv).await?;
        let c = self.adopt(c).await?;
        self.flush().await?;
        Ok(c)
    }

    /// Pages a clinical role: the server resolves whoever covers it now and
    /// opens (or reuses) this user's conversation with them; this device
    /// brings the group in line, so a message sent there next reaches them.
    /// The answer says who it resolved to and whether nobody was on call.
    pub async fn page(
        &mut self,
        role: Uuid,
        patient_ref: Option<String>,
    ) -> Result<wardline_proto::routing::PageRoleResponse> {
        let mut r = self
            .api
            .page_role(
                role,
                &wardline_proto::routing::PageRoleRequest { patient_ref },
            )
            .await?;
        r.conversation = self.adopt(r.conversation).await?;
        Ok(r)
    }

    /// Acknowledges an urgent or STAT message (its escalation stops).
    pub async fn acknowledge(
        &mut self,
        conv: Uuid,
        message: Uuid,
    ) -> Result<wardline_proto::routing::Escalation> {
        let r = self
            .api
            .acknowledge(conv, message)
            .await
            .map_err(ChatError::from);
        self.obey_wipe(r).await
    }

    /// Queues a message and sends the outbox. Offline, the message stays in
    /// the (encrypted) outbox and goes out, in order, on the next sync.
    pub async fn send(
        &mut self,
        conv: Uuid,
        content: MessageContent,
        priority: Priority,
    ) -> Result<Uuid> {
        self.send_with_ttl(conv, content, priority, None).await
    }

    /// As [`Chat::send`]; an ephemeral message if `ttl_secs` (deleted
    /// everywhere that many seconds after it is sent).
    pub async fn send_with_ttl(
        &mut self,
        conv: Uuid,
        content: MessageContent,
        priority: Priority,
        ttl_secs: Option<i64>,
    ) -> Result<Uuid> {
        let id = self.core.queue(conv, content, priority, ttl_secs);
        self.save()?;
        let r = match self.flush().await {
            Ok(_) => match self.refused.iter().find(|r| r.message == id) {
                Some(r) => Err(ChatError::Refused {
                    code: r.code,
                    message: r.reason.clone(),
                }),
                None => Ok(id),
            },
            Err(ChatError::Api(ClientError::Transport(_))) => Ok(id),
            Err(e) => Err(e),
        };
        self.obey_wipe(r).await
    }

    /// Reports this device's platform facts; the answer says whether the
    /// device meets the organisation's policy (if not, messaging calls are
    /// refused with `device_blocked` until it does).
    pub async fn report_posture(
        &mut self,
        posture: &wardline_proto::lifecycle::DevicePosture,
    ) -> Result<wardline_proto::lifecycle::DeviceStatus> {
        let status = self.api.report_posture(posture).await?;
        self.core.device_policy = Some(status.policy.clone());
        self.save()?;
        Ok(status)
    }

    /// Recalls a message this user sent (or any, for an administrator);
    /// every device, this one included, deletes it on its next sync.
    pub async fn recall(
        &mut self,
        conv: Uuid,
        message: Uuid,
    ) -> Result<wardline_proto::lifecycle::RecallResult> {
        let r = self
            .api
            .recall(conv, message)
            .await
            .map_err(ChatError::from);
        let r = self.obey_wipe(r).await?;
        self.sync().await?;
        Ok(r)
    }

    /// Sends the outbox: each conversation's messages in order, the most
    /// urgent conversation first, a conversation that cannot take messages
    /// yet skipped (not holding the others back) and named in
    /// [`Chat::waiting`] with the reason. Returns how many went out.
    pub async fn flush(&mut self) -> Result<usize> {
        let mut sent = 0;
        let mut attempts = 0;
        let mut blocked: BTreeSet<Uuid> = BTreeSet::new();
        self.waiting.clear();
        while let Some(i) = self.core.next_to_send(&blocked) {
            let next = self.core.outbox[i].clone();
            if attempts >= MAX_ATTEMPTS {
                blocked.insert(next.conversation);
                self.waiting
                    .insert(next.conversation, Waiting::MembershipChanging);
                attempts = 0;
                continue;
            }
            attempts += 1;
            if !self.core.mls.has_group(next.conversation) {
                // Not joined yet (Welcome pending) or removed: wait, or drop.
                let closed = self
                    .core
                    .conversations
                    .get(&next.conversation)
                    .is_some_and(|c| c.closed);
                if closed {
                    self.core.drop_at(i);
                    self.save()?;
                } else {
                    blocked.insert(next.conversation);
                    // Nobody left to add this device: say so, it will not pass.
                    let orphaned = self
                        .api
                        .conversation(next.conversation)
                        .await
                        .is_ok_and(|c| !c.devices.iter().any(|d| d.state == DeviceState::Member));
                    self.waiting.insert(
                        next.conversation,
                        if orphaned {
                            Waiting::Orphaned
                        } else {
                            Waiting::NotJoined
                        },
                    );
                }
                attempts = 0;
                continue;
            }
            let req = self.core.encrypt_at(i).expect("the entry exists")?;
            // The ratchet moved: keep that before the bytes leave.
            self.save()?;
            match self.api.submit(next.conversation, &req).await {
                Ok(r) => {
                    self.core.sent_at(i, r.created_at, r.expires_at);
                    self.save()?;
                    sent += 1;
                    attempts = 0;
                }
                Err(e) => match e.code() {
                    Some(ErrorCode::StaleEpoch) => {
                        self.core.reencrypt_at(i);
                        self.save()?;
                        let events = self.pull().await?;
                        Box::pin(self.reconcile_touched(&events)).await?;
                    }
                    Some(ErrorCode::MembershipPending) => {
                        self.core.reencrypt_at(i);
                        self.save()?;
                        self.reconcile(next.conversation).await?;
                    }
                    Some(ErrorCode::NotFound) => {
                        self.core.drop_at(i);
                        self.save()?;
                        attempts = 0;
                    }
                    // Refused for good: retrying would block every message
                    // behind it. Out of the outbox, and said.
                    Some(
                        ErrorCode::Validation
                        | ErrorCode::PayloadTooLarge
                        | ErrorCode::BadRequest
                        | ErrorCode::Forbidden,
                    ) => {
                        self.core.drop_at(i);
                        self.save()?;
                        self.refused.push(Refused {
                            message: next.id,
                            conversation: next.conversation,
                            code: e.code(),
                            reason: e.to_string(),
                        });
                        attempts = 0;
                    }
                    _ => return Err(e.into()),
                },
            }
        }
        Ok(sent)
    }

    /// Colleagues' display names by user id: fetched, and kept on the
    /// device (sealed with the rest) so that senders and readers are named
    /// when the server cannot be reached too (issue 18, item 2).
    pub async fn names(&mut self) -> BTreeMap<Uuid, String> {
        match self.api.list_users().await {
            Ok(users) => {
                let names: BTreeMap<Uuid, String> =
                    users.into_iter().map(|u| (u.id, u.display_name)).collect();
                if names != self.core.directory {
                    self.core.directory = names.clone();
                    // Best effort: the names are shown either way.
                    let _ = self.save();
                }
                names
            }
            Err(_) => self.core.directory.clone(),
        }
    }

    /// A message's delivery and read receipts: from the server, kept on the
    /// device; when the server cannot be reached, the ones last fetched and
    /// the server time they were fetched at (`Some(at)`).
    pub async fn receipts(
        &mut self,
        conv: Uuid,
        message: Uuid,
    ) -> Result<(MessageReceipts, Option<i64>)> {
        match self.api.receipts(conv, message).await {
            Ok(r) => {
                self.core.keep_receipts(r.clone(), self.core.server_time());
                self.save()?;
                Ok((r, None))
            }
            Err(e @ ClientError::Transport(_)) => match self.core.kept_receipts(message) {
                Some((at, r)) => Ok((r.clone(), Some(*at))),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Marks read the messages of `conv` that were shown to the person (a
    /// read receipt means "seen"); the caller names exactly what it
    /// displayed. Own messages are left out. Returns how many were newly marked.
    pub async fn mark_shown(&mut self, conv: Uuid, shown: &[Uuid]) -> Result<i64> {
        let theirs: Vec<Uuid> = self
            .core
            .conversations
            .get(&conv)
            .map(|c| {
                c.messages
                    .iter()
                    .filter(|m| !m.mine && shown.contains(&m.id))
                    .map(|m| m.id)
                    .collect()
            })
            .unwrap_or_default();
        let mut marked = 0;
        for chunk in theirs.chunks(wardline_proto::messaging::MAX_READ_IDS) {
            marked += self.api.mark_shown(conv, chunk).await?.marked;
        }
        Ok(marked)
    }

    /// Marks the routine messages of `conv` read up to its latest message
    /// from someone else (a watermark, as when the conversation is opened at
    /// its end). Urgent and STAT messages are never marked this way; they
    /// need [`Chat::mark_shown`].
    pub async fn mark_read(&mut self, conv: Uuid) -> Result<Option<Uuid>> {
        let last = self
            .core
            .conversations
            .get(&conv)
            .and_then(|c| c.messages.iter().rev().find(|m| !m.mine))
            .map(|m| m.id);
        if let Some(id) = last {
            self.api.mark_read(conv, id).await?;
        }
        Ok(last)
    }

    /// Streams the inbox over the sync WebSocket, calling `on_event` for each
    /// event, until the socket closes (the caller reconnects) or `on_event`
    /// returns false.
    /// Between batches the store's lock is let go, so other commands on the
    /// same device (another terminal, another tab) run meanwhile; each batch
    /// takes it back and starts from what is on disk.
    pub async fn watch(&mut self, on_event: impl FnMut(&Event) -> bool) -> Result<()> {
        // After [`Chat::let_go`] (a caller waiting to reconnect).
        self.relock().await?;
        let r = self.watch_inner(on_event).await;
        let relocked = self.relock().await;
        let r = r.and(relocked);
        self.obey_wipe(r).await
    }

    async fn watch_inner(&mut self, mut on_event: impl FnMut(&Event) -> bool) -> Result<()> {
        let events = self.sync().await?;
        for e in &events {
            if !on_event(e) {
                return Ok(());
            }
        }
        let mut socket = self.connect().await?;
        let mut batch: Vec<InboxEntry> = Vec::new();
        self.unlock();
        while let Some(msg) = socket.next().await {
            let msg = msg.map_err(|e| ChatError::Socket(e.to_string()))?;
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => break,
                _ => continue,
            };
            let frame: ServerFrame = serde_json::from_str(&text)
                .map_err(|e| ChatError::Socket(format!("unexpected frame: {e}")))?;
            match frame {
                ServerFrame::Entry(e) => batch.push(*e),
                ServerFrame::Notice(notice) => {
                    if !on_event(&Event::Notice { notice }) {
                        return Ok(());
                    }
                }
                // A later server's frame.
                ServerFrame::Unknown => {}
                ServerFrame::Idle { server_time } => {
                    self.core.saw_server_time(server_time);
                    if batch.is_empty() {
                        continue;
                    }
                    self.relock().await?;
                    let mut events = Vec::new();
                    for e in batch.drain(..) {
                        events.extend(self.core.apply(&e));
                    }
                    self.save()?;
                    let ack = serde_json::to_string(&ClientFrame::Ack {
                        up_to: self.core.cursor,
                    })
                    .expect("frames serialise");
                    socket
                        .send(Message::Text(ack.into()))
                        .await
                        .map_err(|e| ChatError::Socket(e.to_string()))?;
                    let more = self.after_events(&events).await?;
                    self.unlock();
                    for e in events.iter().chain(more.iter()) {
                        if !on_event(e) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens the sync WebSocket from this device's position (what [`Chat::watch`]
    /// reads; public for tools that want the raw frames).
    pub async fn connect(&self) -> Result<SyncSocket> {
        let base = self.api.base_url();
        let url = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(ChatError::Socket(format!("unsupported server URL {base}")));
        };
        let url = format!("{url}/api/v1/sync/ws?after={}", self.core.cursor);
        let mut request = url
            .into_client_request()
            .map_err(|e| ChatError::Socket(e.to_string()))?;
        if let Some(t) = self.api.token() {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| ChatError::Socket("session token is not a header value".into()))?;
            request
                .headers_mut()
                .insert(tungstenite::http::header::AUTHORIZATION, value);
        }
        let connector = match self.api.ca_pem() {
            Some(pem) => {
                use rustls_pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| ChatError::Socket(format!("CA file: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| ChatError::Socket(format!("CA file: {e}")))?;
                }
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| ChatError::Socket(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
            }
            None => None,
        };
        let (socket, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector),
        )
        .await
        .map_err(|_| ChatError::Socket("timed out connecting".into()))?
        .map_err(|e| match e {
            tungstenite::Error::Http(resp) => {
                ChatError::Socket(format!("server refused the upgrade: {}", resp.status()))
            }
            e => ChatError::Socket(e.to_string()),
        })?;
        Ok(socket)
    }
}

/// Obeys a wipe order without opening the store (no passphrase needed):
/// overwrites and removes the sealed store at `path`, then confirms with the
/// session the wipe ended. Returns the [`ChatError::Wiped`] to report.
pub async fn erase_device(api: &ApiClient, path: &Path) -> ChatError {
    if let Ok(len) = std::fs::metadata(path).map(|m| m.len()) {
        // Overwrite before unlinking so the sealed state is not left in the
        // file's blocks (best effort on copy-on-write file systems).
        let _ = write_private(path, &vec![0u8; len as usize]);
    }
    let _ = std::fs::remove_file(path);
    let confirmed = api.confirm_wipe().await.is_ok();
    ChatError::Wiped { confirmed }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
