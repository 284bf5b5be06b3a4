//! Acknowledgements from sync WebSockets, written in batches.
//!
//! Every recipient acknowledges every entry it is pushed, so a message to a
//! 200-member conversation brings 199 acknowledgements. Written one by one,
//! each is its own durable transaction, queued on the same writer as message
//! submissions: at 5 messages a second that was a thousand commits a second
//! and the submissions waited behind them (`cargo xtask bench load`). Here
//! acknowledgements wait up to [`WINDOW`] and the latest one per device is
//! written, all in one transaction.
//!
//! A crash loses at most that window of acknowledgements: those entries are
//! delivered again, which delivery already allows (at-least-once; clients
//! skip what they have applied). `POST /api/v1/sync/ack` still writes at once
//! and answers with the cursor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;
use wardline_proto::DeviceId;

use crate::clock::Clock;
use wardline_store::MessagingStore;

/// How long an acknowledgement may wait for others.
const WINDOW: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Pending {
    latest: HashMap<DeviceId, i64>,
    scheduled: bool,
}

#[derive(Clone)]
pub struct AckBatcher {
    pending: Arc<Mutex<Pending>>,
    store: Arc<dyn MessagingStore>,
    clock: Arc<dyn Clock>,
}

impl AckBatcher {
    pub fn new(store: Arc<dyn MessagingStore>, clock: Arc<dyn Clock>) -> AckBatcher {
        AckBatcher {
            pending: Arc::default(),
            store,
            clock,
        }
    }

    /// Records that `device` has everything up to `up_to`; written within
    /// [`WINDOW`] together with whatever else arrived.
    pub fn queue(&self, device: Uuid, up_to: i64) {
        let mut p = self.pending.lock().expect("ack batch lock");
        let seq = p.latest.entry(device.into()).or_insert(up_to);
        *seq = (*seq).max(up_to);
        if p.scheduled {
            return;
        }
        p.scheduled = true;
        let (pending, store, clock) =
            (self.pending.clone(), self.store.clone(), self.clock.clone());
        tokio::spawn(async move {
            tokio::time::sleep(WINDOW).await;
            let batch: Vec<(DeviceId, i64)> = {
                let mut p = pending.lock().expect("ack batch lock");
                p.scheduled = false;
                p.latest.drain().collect()
            };
            if let Err(e) = store.ack_many(&batch, clock.now()).await {
                // Not lost for good: those entries are delivered again.
                tracing::warn!(error = %e, devices = batch.len(), "writing acknowledgements failed");
            }
        });
    }
}
