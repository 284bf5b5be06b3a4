//! Wake-ups for open sync connections on this node.
//!
//! The database is the truth: a wake-up only says "look at your inbox again".
//! A `watch` channel per device never loses one (a receiver sees that the value
//! changed, however many times) and several connections of one device each see
//! it. Other nodes hear of a fan-out through `bus.rs` (PostgreSQL
//! LISTEN/NOTIFY); sockets also poll on a timer (see `ws.rs`), so even a lost
//! notification only delays delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use wardline_proto::DeviceId;

#[derive(Clone, Default)]
pub struct DeliveryHub {
    devices: Arc<Mutex<HashMap<DeviceId, watch::Sender<u64>>>>,
}

impl DeliveryHub {
    pub fn subscribe(&self, device: DeviceId) -> watch::Receiver<u64> {
        let mut map = self.devices.lock().expect("hub lock");
        map.entry(device)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn wake(&self, devices: &[DeviceId]) {
        let mut map = self.devices.lock().expect("hub lock");
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
        let d = uuid::Uuid::new_v4();
        let mut a = hub.subscribe(d);
        let mut b = hub.subscribe(d);
        hub.wake(&[d]);
        a.changed().await.unwrap();
        b.changed().await.unwrap();
        hub.wake(&[uuid::Uuid::new_v4()]); // nobody listening: no effect
    }
}
