//! Wake-ups for open sync connections on this node.
//!
//! The database is the truth: a wake-up only says "look at your inbox again".
//! A `watch` channel per device never loses one (a receiver sees that the value
//! changed, however many times) and several connections of one device each see
//! it. Other nodes hear of a fan-out through the `Bus` (PostgreSQL
//! LISTEN/NOTIFY); sockets also poll on a timer (see `wardline-server`'s
//! `routes::sync_socket`), so even a lost
//! notification only delays delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use wardline_proto::{DeviceId, UserId};

pub use crate::config::{MAX_SOCKETS_PER_DEVICE, MAX_SOCKETS_PER_USER};

struct Sockets {
    devices: HashMap<DeviceId, watch::Sender<u64>>,
    /// Staff notices (not inbox entries): one channel per user with a socket.
    notices: HashMap<UserId, watch::Sender<u64>>,
    users: HashMap<UserId, usize>,
    per_device: usize,
    per_user: usize,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            devices: HashMap::new(),
            notices: HashMap::new(),
            users: HashMap::new(),
            per_device: MAX_SOCKETS_PER_DEVICE,
            per_user: MAX_SOCKETS_PER_USER,
        }
    }
}

#[derive(Clone, Default)]
pub struct DeliveryHub {
    inner: Arc<Mutex<Sockets>>,
}

/// An open socket's place under the caps; given back when dropped.
pub struct SocketSlot {
    hub: DeliveryHub,
    user: UserId,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut s = self.hub.inner.lock().expect("hub lock");
        if let Some(n) = s.users.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                s.users.remove(&self.user);
            }
        }
    }
}

impl DeliveryHub {
    /// Sets the caps on open sockets per device and per user.
    pub fn set_caps(&self, per_device: usize, per_user: usize) {
        let mut s = self.inner.lock().expect("hub lock");
        s.per_device = per_device;
        s.per_user = per_user;
    }

    /// Wake-ups for a new socket of `user`'s `device`, and its place under
    /// the caps; `None` when the device or the user has as many open as
    /// allowed. (The receiver counts the device's sockets: it is dropped with
    /// the socket.)
    pub fn open_socket(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Option<(watch::Receiver<u64>, SocketSlot)> {
        let mut s = self.inner.lock().expect("hub lock");
        let per_device = s.devices.get(&device).map_or(0, |tx| tx.receiver_count());
        let per_user = s.users.get(&user).copied().unwrap_or(0);
        if per_device >= s.per_device || per_user >= s.per_user {
            return None;
        }
        *s.users.entry(user).or_insert(0) += 1;
        let rx = s
            .devices
            .entry(device)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Some((
            rx,
            SocketSlot {
                hub: self.clone(),
                user,
            },
        ))
    }

    /// Wake-ups for `user`'s staff notices (a socket subscribes once).
    /// Notices are not announced to other nodes: there a socket finds them
    /// at its next poll.
    pub fn notices(&self, user: UserId) -> watch::Receiver<u64> {
        let mut s = self.inner.lock().expect("hub lock");
        s.notices
            .entry(user)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// `users` have new staff notices.
    pub fn notify(&self, users: &[UserId]) {
        let mut s = self.inner.lock().expect("hub lock");
        for u in users {
            if let Some(tx) = s.notices.get(u) {
                if tx.receiver_count() == 0 {
                    s.notices.remove(u);
                } else {
                    tx.send_modify(|n| *n += 1);
                }
            }
        }
    }

    /// Whether `device` has an open sync socket on this node (it hears of
    /// news at once and needs no push).
    pub fn has_socket(&self, device: DeviceId) -> bool {
        let s = self.inner.lock().expect("hub lock");
        s.devices
            .get(&device)
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    pub fn wake(&self, devices: &[DeviceId]) {
        let mut s = self.inner.lock().expect("hub lock");
        let map = &mut s.devices;
        for d in devices {
            if let Some(tx) = map.get(d) {
                if tx.receiver_count() == 0 {
                    map.remove(d);
                } else {
                    tx.send_modify(|n| *n += 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_before_the_wait_is_not_lost() {
        let hub = DeliveryHub::default();
        let (d, u) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let (mut a, _sa) = hub.open_socket(u.into(), d.into()).unwrap();
        let (mut b, _sb) = hub.open_socket(u.into(), d.into()).unwrap();
        hub.wake(&[d.into()]);
        a.changed().await.unwrap();
        b.changed().await.unwrap();
        hub.wake(&[uuid::Uuid::new_v4().into()]); // nobody listening: no effect
    }

    #[test]
    fn sockets_are_capped_per_device_and_per_user() {
        let hub = DeliveryHub::default();
        let u = uuid::Uuid::new_v4();
        let d = uuid::Uuid::new_v4();
        let open: Vec<_> = (0..MAX_SOCKETS_PER_DEVICE)
            .map(|_| hub.open_socket(u.into(), d.into()).unwrap())
            .collect();
        assert!(hub.open_socket(u.into(), d.into()).is_none(), "per device");
        drop(open);
        assert!(hub.open_socket(u.into(), d.into()).is_some(), "given back");
        let mut held = Vec::new();
        while let Some(s) = hub.open_socket(u.into(), uuid::Uuid::new_v4().into()) {
            held.push(s);
        }
        assert_eq!(held.len(), MAX_SOCKETS_PER_USER);
        assert!(
            hub.open_socket(uuid::Uuid::new_v4().into(), d.into())
                .is_some(),
            "another user"
        );
    }
}
