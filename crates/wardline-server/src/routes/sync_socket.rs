//! The sync WebSocket: pushes a device's inbox entries as they arrive.
//!
//! The socket is a faster path to the same inbox as `GET /api/v1/sync`: it
//! sends every entry after the client's position, then an `idle` frame, then
//! waits for a wake-up (a message for this device on this node), a change to
//! sessions (revocation closes the socket at once), a frame from the client
//! (acknowledgements) or the poll interval (a backstop for a lost cross-node
//! notification, and for the session check). Acknowledgements move the same cursor as
//! `POST /api/v1/sync/ack`, written in batches (`acks.rs`), so delivery is
//! at-least-once whichever path is used.

use std::time::Duration;

use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::Response;
use rand::Rng;
use uuid::Uuid;

use wardline_proto::sync::{ClientFrame, ServerFrame, SocketTicket, SyncQuery};
use wardline_proto::{ErrorBody, Permission};

use crate::authn::{Authenticated, SocketSession};
use crate::error::{ApiError, ApiResult};
use crate::http::ApiQuery;
use crate::state::AppState;
use wardline_core::auth::AuthService;
use wardline_core::authz::Principal;
use wardline_core::messaging::MessagingService;
use wardline_core::patients::PatientService;

/// How often, give or take a fifth, an idle socket looks at its inbox and
/// session without a wake-up. Revocations and new entries on this node wake
/// it at once, other nodes' entries through PostgreSQL notifications, so this
/// only bounds how late a lost notification or an expired session is noticed.
/// At 5 s, 10,000 idle sockets kept 84 % of a core busy (`cargo xtask bench
/// load`); the jitter keeps sockets opened together from polling together.
const POLL: Duration = Duration::from_secs(30);
/// The client only sends acknowledgements: small frames, a small read buffer
/// (tungstenite allocates 128 KiB per socket by default, most of an idle
/// socket's memory).
const READ_BUFFER: usize = 4 * 1024;
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
const BATCH: i64 = 100;
/// Close codes (RFC 6455 §7.4.1). "Policy violation": the session ended, or
/// the client sent a frame that is not an acknowledgement.
const CLOSE_POLICY: u16 = 1008;
/// "Unsupported data": a binary frame (the protocol is JSON text).
const CLOSE_UNSUPPORTED: u16 = 1003;
/// "Protocol error": a frame the socket could not read (over
/// `MAX_CLIENT_MESSAGE`, or malformed).
const CLOSE_PROTOCOL: u16 = 1002;
/// "Internal error": the server failed; the client reconnects.
const CLOSE_SERVER_ERROR: u16 = 1011;

/// What the socket uses, and nothing else of the application's state.
#[derive(Clone)]
pub struct SocketState {
    auth: AuthService,
    messaging: MessagingService,
    patients: PatientService,
    /// Moves when a session may have ended: the socket re-checks its own.
    session_changes: tokio::sync::watch::Receiver<u64>,
}

impl FromRef<AppState> for SocketState {
    fn from_ref(s: &AppState) -> SocketState {
        SocketState {
            auth: s.auth.clone(),
            messaging: s.messaging.clone(),
            patients: s.patients.clone(),
            session_changes: s.session_changes.clone(),
        }
    }
}

/// Real-time delivery: upgrade to a WebSocket that streams this device's inbox
/// after `after`. Frames are JSON: from the server `{"type":"entry",…}` and
/// `{"type":"idle","server_time":T}`; from the client `{"type":"ack","up_to":N}`. A browser
/// authenticates with `ticket` (from `POST /api/v1/sync/ticket`) instead of
/// the `Authorization` header it cannot send.
#[utoipa::path(get, path = "/api/v1/sync/ws", tag = "messaging", security(("bearer" = [])),
    params(SyncQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 409, body = ErrorBody),
        (status = 429, description = "Too many open sync sockets for this device (4) or user (16) on this node", body = ErrorBody)))]
pub async fn sync_socket(
    State(s): State<SocketState>,
    SocketSession(p): SocketSession,
    ApiQuery(q): ApiQuery<SyncQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    p.authorize(Permission::Messaging)?;
    let device = s.messaging.device_of(&p).await?;
    let ws = ws.map_err(|_| {
        ApiError::bad_request("expected a WebSocket upgrade (GET with Upgrade: websocket)")
    })?;
    if q.after < 0 {
        return Err(ApiError::bad_request("after must not be negative").into());
    }
    // Taken before the upgrade, so a refusal is an HTTP answer (429).
    let (wake, slot) = s
        .messaging
        .hub
        .open_socket(p.user_id, device.id)
        .ok_or_else(|| ApiError {
            message: "too many open sync sockets for this device or user; close one first".into(),
            ..ApiError::rate_limited(POLL.as_secs() as i64)
        })?;
    let ws = ws
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(ws.on_upgrade(move |socket| async move {
        let _slot = slot;
        run(s, p, device.id.into(), q.after, wake, socket).await;
    }))
}

/// A one-time ticket for opening the sync WebSocket from a browser, which
/// cannot send the `Authorization` header with an upgrade: good for one
/// upgrade within 30 seconds, for this session.
#[utoipa::path(post, path = "/api/v1/sync/ticket", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = SocketTicket)))]
pub async fn socket_ticket(
    State(auth): State<AuthService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<SocketTicket>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(auth.issue_socket_ticket(&p).await?))
}

/// The socket keeps no token (a browser's socket never had one): its
/// session is looked at by id, with the same checks as every request.
async fn session_alive(s: &SocketState, p: &Principal) -> bool {
    s.auth.reauthenticate(p.session_id).await.is_ok()
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> bool {
    let text = serde_json::to_string(frame).expect("frames serialise");
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn run(
    s: SocketState,
    p: Principal,
    device: Uuid,
    mut cursor: i64,
    mut wake: tokio::sync::watch::Receiver<u64>,
    mut socket: WebSocket,
) {
    let mut sessions = s.session_changes.clone();
    sessions.mark_unchanged();
    // Staff notices (a patient replied) for those who text patients: the
    // unseen ones on connecting, then each as it comes.
    let wants_notices = p.has(Permission::PatientTexting);
    let mut notices = s.messaging.hub.notices(p.user_id);
    notices.mark_unchanged();
    // Times are whole seconds: the last second is looked at again, and what
    // this socket sent already is not sent twice.
    let mut notices_after = 0;
    let mut sent = std::collections::HashSet::new();
    // Looked at on connecting, on a notice wake-up and on the poll timer
    // (other nodes' notices), never on a message's wake-up: delivery pays
    // nothing for them.
    let mut check_notices = wants_notices;
    loop {
        if check_notices {
            check_notices = false;
            let list = match s
                .patients
                .notices(p.org_id, p.user_id, notices_after - 1)
                .await
            {
                Ok(l) => l,
                Err(_) => {
                    return close(&mut socket, CLOSE_SERVER_ERROR, "server error; reconnect").await;
                }
            };
            for n in list.notices {
                notices_after = notices_after.max(n.created_at);
                if sent.insert(n.id) && !send(&mut socket, &ServerFrame::Notice(n)).await {
                    return;
                }
            }
        }
        loop {
            let entries = match s.messaging.inbox_after(device, cursor, BATCH).await {
                Ok(e) => e,
                Err(_) => {
                    return close(&mut socket, CLOSE_SERVER_ERROR, "server error; reconnect").await;
                }
            };
            let n = entries.len() as i64;
            for e in entries {
                let seq = e.seq;
                if !send(&mut socket, &ServerFrame::Entry(Box::new(e))).await {
                    return;
                }
                cursor = seq;
            }
            if n < BATCH {
                break;
            }
        }
        let idle = ServerFrame::Idle {
            server_time: s.messaging.now(),
        };
        if !send(&mut socket, &idle).await {
            return;
        }
        // Wait for a reason to look at the inbox again; the client's frames
        // (acknowledgements) are not one, so a chatty client costs no queries.
        let deadline =
            tokio::time::Instant::now() + POLL.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        loop {
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return } else { break },
                changed = notices.changed(), if wants_notices => {
                    if changed.is_err() {
                        return;
                    }
                    check_notices = true;
                    break;
                }
                changed = sessions.changed() => {
                    if changed.is_err() || !session_alive(&s, &p).await {
                        return close(&mut socket, CLOSE_POLICY, "session ended").await;
                    }
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if !session_alive(&s, &p).await {
                        return close(&mut socket, CLOSE_POLICY, "session ended").await;
                    }
                    check_notices = wants_notices;
                    break;
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<ClientFrame>(&text) {
                            Ok(ClientFrame::Ack { up_to }) => {
                                // An acknowledgement beyond the inbox is the client's
                                // bug; the cursor simply does not move.
                                s.messaging.queue_ack(device, up_to);
                            }
                            Err(_) => {
                                return close(&mut socket, CLOSE_POLICY, "unknown frame").await;
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        return close(&mut socket, CLOSE_UNSUPPORTED, "text frames only").await;
                    }
                    // Too big, or not a WebSocket frame: say why if the
                    // connection still carries it (before, it just dropped).
                    Some(Err(_)) => {
                        return close(&mut socket, CLOSE_PROTOCOL, "unreadable frame").await;
                    }
                    Some(Ok(Message::Close(_))) | None => return,
                    // Pings are answered by the WebSocket layer; pongs need nothing.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                },
            }
        }
    }
}
