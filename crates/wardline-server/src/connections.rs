//! What a connection may hold of the server before it has sent a request
//! (finding M2 of 2026-11-30, slowloris: partial requests stayed open for
//! good, so about 20,000 of them would have stopped the server accepting).
//!
//! * [`LimitedAcceptor`] caps open connections in total and per client
//!   address (loopback and trusted proxies are exempt from the per-address
//!   cap: everyone behind them shares their address). A connection over a
//!   cap is closed at once, before the TLS handshake.
//! * HTTP/1 header reads (and idle keep-alive waits) are bounded by hyper's
//!   `header_read_timeout`, and the first request by axum-server's
//!   `first_request_timeout` (both set in `app.rs`).
//! * [`min_rate_body`] cuts a request body that arrives slower than a
//!   minimum rate once a grace period is over: a body trickled a byte at a
//!   time no longer holds a request open.

use std::collections::HashMap;
use std::future::{Future, Ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Open connections, in total and per client address.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    /// Addresses the per-address cap does not apply to.
    exempt: Vec<IpAddr>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_address: usize, exempt: Vec<IpAddr>) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_address,
            exempt,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for a connection from `ip`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Slot> {
        let mut open = self.open.lock().expect("connection counts poisoned");
        if open.0 >= self.max_total {
            metrics::counter!("wardline_connections_refused_total", "cap" => "total").increment(1);
            return None;
        }
        let counted = ip.filter(|ip| !ip.is_loopback() && !self.exempt.contains(ip));
        if let Some(ip) = counted {
            let n = open.1.entry(ip).or_insert(0);
            if *n >= self.max_per_address {
                metrics::counter!("wardline_connections_refused_total", "cap" => "address")
                    .increment(1);
                return None;
            }
            *n += 1;
        }
        open.0 += 1;
        Some(Slot {
            limits: self.clone(),
            ip: counted,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().expect("connection counts poisoned").0
    }
}

/// One admitted connection; gives its place back when dropped.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("connection counts poisoned");
        open.0 -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = open.1.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&ip);
            }
        }
    }
}

/// A TCP stream that holds its connection's slot for as long as it lives.
pub struct CountedStream {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The innermost acceptor: admits a TCP connection under the caps (before
/// any TLS work) or closes it.
#[derive(Clone)]
pub struct LimitedAcceptor {
    limits: Arc<ConnectionLimits>,
}

impl LimitedAcceptor {
    pub fn new(limits: Arc<ConnectionLimits>) -> Self {
        LimitedAcceptor { limits }
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for LimitedAcceptor {
    type Stream = CountedStream;
    type Service = S;
    type Future = Ready<io::Result<(CountedStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ip = stream.peer_addr().ok().map(|a| a.ip());
        std::future::ready(match self.limits.admit(ip) {
            Some(slot) => {
                let _ = stream.set_nodelay(true);
                Ok((
                    CountedStream {
                        stream,
                        _slot: slot,
                    },
                    service,
                ))
            }
            None => Err(io::Error::other("connection limit reached")),
        })
    }
}

/// A request body that must keep arriving at `min_bytes_per_sec` once
/// `grace` is over (measured from the first poll, over the whole body).
struct MinRate {
    inner: BodyDataStream,
    started: tokio::time::Instant,
    bytes: u64,
    min_bytes_per_sec: u64,
    grace: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl MinRate {
    /// The latest time the next byte may arrive and keep the rate.
    fn next_deadline(&self) -> tokio::time::Instant {
        let at_rate =
            Duration::from_secs_f64((self.bytes + 1) as f64 / self.min_bytes_per_sec as f64);
        self.started + at_rate.max(self.grace)
    }
}

impl Stream for MinRate {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.bytes += chunk.len() as u64;
                let next = self.next_deadline();
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    metrics::counter!("wardline_slow_bodies_cut_total").increment(1);
                    Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body arrived too slowly",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Wraps `req`'s body in the minimum-rate check (a middleware for every route).
pub fn min_rate_body(req: Request, min_bytes_per_sec: u64, grace: Duration) -> Request {
    req.map(|body| {
        let started = tokio::time::Instant::now();
        let mut rate = MinRate {
            inner: body.into_data_stream(),
            started,
            bytes: 0,
            min_bytes_per_sec: min_bytes_per_sec.max(1),
            grace,
            deadline: Box::pin(tokio::time::sleep_until(started + grace)),
        };
        let first = rate.next_deadline();
        rate.deadline.as_mut().reset(first);
        Body::from_stream(rate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_total_and_give_back_on_drop() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let limits = ConnectionLimits::new(4, 2, vec![proxy]);
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let a1 = limits.admit(Some(a)).unwrap();
        let _a2 = limits.admit(Some(a)).unwrap();
        assert!(limits.admit(Some(a)).is_none(), "per address");
        let _b1 = limits.admit(Some(b)).unwrap();
        // Loopback and the trusted proxy are exempt from the per-address cap
        // but still count toward the total.
        let _p = limits.admit(Some(proxy)).unwrap();
        assert!(limits.admit(Some(b)).is_none(), "total");
        assert_eq!(limits.open(), 4);
        drop(a1);
        assert_eq!(limits.open(), 3);
        let _a3 = limits.admit(Some(a)).unwrap();
        let loopback = ConnectionLimits::new(10, 1, vec![]);
        let _l1 = loopback.admit(Some("127.0.0.1".parse().unwrap())).unwrap();
        let _l2 = loopback.admit(Some("127.0.0.1".parse().unwrap())).unwrap();
    }
}
