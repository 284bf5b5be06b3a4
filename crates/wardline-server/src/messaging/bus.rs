//! Wake-ups between nodes. Several stateless nodes share one PostgreSQL
//! database; a message accepted on one must wake the sync sockets open on the
//! others. After a fan-out commits, the node sends `NOTIFY wardline_inbox` with
//! the recipients' device ids; every node LISTENs and wakes its local sockets.
//! The database stays the truth: a lost notification (a node reconnecting)
//! only delays delivery until the socket's next poll.

use std::time::Duration;

use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::DeliveryHub;

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

/// Listens on `url` (a PostgreSQL database) for the rest of the process,
/// reconnecting after failures.
pub fn spawn_listener(url: String, hub: DeliveryHub) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => loop {
                        match listener.recv().await {
                            Ok(n) => hub.wake(&parse(n.payload())),
                            Err(e) => {
                                tracing::warn!(error = %e, "inbox wake-up listener lost its connection");
                                break;
                            }
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for inbox wake-ups"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot connect the inbox wake-up listener"),
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
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
