//! [`Bus`] on PostgreSQL: after a fan-out commits, the node sends `NOTIFY
//! wardline_inbox` with the recipients' device ids; every node LISTENs and
//! wakes its local sockets. The database stays the truth: a lost notification
//! (a node reconnecting) only delays delivery until the socket's next poll.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;
use uuid::Uuid;
use wardline_proto::DeviceId;
use wardline_store::{Bus, Result};

pub const CHANNEL: &str = "wardline_inbox";
/// NOTIFY payloads must stay under 8,000 bytes: about 200 device ids each.
pub const MAX_PAYLOAD: usize = 7_000;

/// Comma-separated device ids, in payloads that fit NOTIFY.
pub fn payloads(devices: &[Uuid]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for d in devices {
        if !cur.is_empty() && cur.len() + 37 > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&d.to_string());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse(payload: &str) -> Vec<Uuid> {
    payload
        .split(',')
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect()
}

/// Sends wake-ups with `pg_notify` on a small pool of its own, so that a
/// burst of wake-ups never takes connections from the store's requests.
pub struct PgBus {
    pool: PgPool,
}

impl PgBus {
    /// Connects lazily to `url` (a PostgreSQL database).
    pub fn new(url: &str) -> Result<PgBus> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(url)?;
        Ok(PgBus { pool })
    }

    /// Listens on `url` until `shutdown` turns true, calling `wake` with the
    /// device ids of every notification (this node's own included), and
    /// reconnecting 5 s after a failure.
    pub async fn listen(
        url: String,
        wake: impl Fn(&[Uuid]) + Send + 'static,
        mut shutdown: watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => loop {
                        tokio::select! {
                            n = listener.recv() => match n {
                                Ok(n) => wake(&parse(n.payload())),
                                Err(e) => {
                                    tracing::warn!(error = %e, "inbox wake-up listener lost its connection");
                                    break;
                                }
                            },
                            _ = shutdown.changed() => return,
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for inbox wake-ups"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot connect the inbox wake-up listener"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Bus for PgBus {
    async fn announce(&self, devices: &[DeviceId]) -> Result<()> {
        for payload in payloads(&devices.iter().copied().map(Into::into).collect::<Vec<_>>()) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_fit_notify_and_round_trip() {
        let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
        let p = payloads(&ids);
        assert!(p.len() > 1 && p.iter().all(|s| s.len() <= MAX_PAYLOAD));
        let back: Vec<Uuid> = p.iter().flat_map(|s| parse(s)).collect();
        assert_eq!(back, ids);
        assert!(payloads(&[]).is_empty());
    }
}
