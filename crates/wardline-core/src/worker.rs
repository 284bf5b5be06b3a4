//! Background loops of a serving node, and the one shutdown signal that stops
//! them.
//!
//! Every loop (escalation steps, routing housekeeping, schedule feeds,
//! lifecycle deletion, the SMS outbox, SIEM export, audit retention, the
//! anonymous-refusal flush, inter-node wake-ups) is a [`Worker`]: a name and
//! a `run` that returns once [`Shutdown`] fires. [`Workers`] starts them and,
//! at shutdown, tells them all at once and waits a bounded time; a worker
//! still busy after that is aborted, which every loop survives as it survives
//! a crash (steps and runs are leased and idempotent, transactions roll back).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A background loop.
#[async_trait]
pub trait Worker: Send + 'static {
    /// Short, stable name for logs (`escalation`, `sms-outbox`, …).
    fn name(&self) -> &'static str;

    /// Runs until `shutdown` fires, then returns after the current step
    /// (a step is never cut in half by the signal itself).
    async fn run(self: Box<Self>, shutdown: Shutdown);
}

/// The receiving end of the shutdown signal; cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Whether shutdown has begun.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has begun (at once if it already has, or if
    /// the sending side is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d` unless shutdown begins first; true if it did.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_set(),
            _ = self.wait() => true,
        }
    }

    /// The underlying channel, for code below this crate that takes one
    /// (`wardline-store-sql`'s `PgBus::listen`).
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

/// The running workers of a node and the sending end of their signal.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<&'static str>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
        }
    }
}

impl Workers {
    pub fn start(&mut self, worker: Box<dyn Worker>) {
        let shutdown = Shutdown(self.stop.subscribe());
        let name = worker.name();
        tracing::debug!(worker = name, "worker started");
        self.tasks.spawn(async move {
            worker.run(shutdown).await;
            name
        });
    }

    /// How many are running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tells every worker to stop and waits up to `grace` for them; aborts
    /// (and names in the log) those still running after it.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok(name))) => tracing::debug!(worker = name, "worker stopped"),
                Ok(Some(Err(e))) if e.is_panic() => {
                    tracing::error!("a worker panicked before shutdown")
                }
                Ok(Some(Err(_))) => {}
                Ok(None) => return,
                Err(_) => {
                    tracing::warn!(
                        still_running = self.tasks.len(),
                        grace_ms = grace.as_millis() as u64,
                        "workers did not stop in time; aborting them"
                    );
                    self.tasks.shutdown().await;
                    return;
                }
            }
        }
    }
}

/// A step run every `period` (the first at once), as a worker.
type Step = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub struct Every {
    name: &'static str,
    period: Duration,
    step: Step,
}

impl Every {
    /// `step` logs its own failures: a failed step is retried next period.
    pub fn new<F, Fut>(name: &'static str, period: Duration, step: F) -> Box<Every>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Box::new(Every {
            name,
            period,
            step: Box::new(move || Box::pin(step())),
        })
    }
}

#[async_trait]
impl Worker for Every {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(self: Box<Self>, mut shutdown: Shutdown) {
        let mut every = tokio::time::interval(self.period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.wait() => return,
            }
            (self.step)().await;
            if shutdown.is_set() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Stubborn;

    #[async_trait]
    impl Worker for Stubborn {
        fn name(&self) -> &'static str {
            "stubborn"
        }
        async fn run(self: Box<Self>, _shutdown: Shutdown) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_workers_stop_at_the_signal_and_stragglers_are_aborted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut workers = Workers::default();
        let r = runs.clone();
        workers.start(Every::new("count", Duration::from_secs(10), move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        }));
        workers.start(Box::new(Stubborn));
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "at 0, 10 and 20 s");
        let before = tokio::time::Instant::now();
        workers.stop(Duration::from_secs(5)).await;
        // The periodic one stopped at once; the stubborn one was aborted at
        // the end of the grace period, not waited for.
        assert_eq!(before.elapsed(), Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no run after the stop");
    }
}
