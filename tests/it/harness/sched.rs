//! The deterministic scheduler: every op runs as its own tokio task, but only
//! one runs at a time. Starting or resuming an op waits until that op either
//! parks at a `Pause` of its fault script or finishes; only then does the
//! plan go on. So, given the plan, the order of effects on the real servers
//! is fixed, however the runtime schedules threads.

use super::faults::{Ctl, Fired, OP, OpCtx};
use futures::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What an op reports to the scheduler.
pub enum Signal {
    Parked { op: usize, resume: oneshot::Sender<()> },
    Done { op: usize, outcome: Outcome },
}

/// An op's answer: the HTTP status (or a pseudo status for the writer and
/// reconcile) and body. A panic in a handler is status 999.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub body: String,
}

/// What one scheduling turn ended with.
pub enum Ran {
    Parked(usize),
    Done(usize, Outcome),
}

/// How long one op may run before the harness calls it hung.
const OP_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Sched {
    tx: mpsc::UnboundedSender<Signal>,
    rx: mpsc::UnboundedReceiver<Signal>,
    /// Parked ops, oldest first, with what resumes them.
    parked: Vec<(usize, oneshot::Sender<()>)>,
    /// Parked ops that finished without being resumed: an op whose port
    /// calls run concurrently (a reconcile reading several days at once) can
    /// park one call while another crashes it. Handed to the runner by
    /// [`Sched::take_finished`] instead of passing for the next op's answer.
    finished: Vec<(usize, Outcome)>,
    ctl: Arc<Ctl>,
    ops: HashMap<usize, Arc<OpCtx>>,
}

impl Sched {
    pub fn new(ctl: Arc<Ctl>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx, parked: Vec::new(), finished: Vec::new(), ctl, ops: HashMap::new() }
    }

    /// Starts op `op` with its fault script and runs it until it parks or finishes.
    pub async fn start<F>(&mut self, op: usize, script: Vec<super::faults::Decision>, fut: F) -> Ran
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let ctx = Arc::new(OpCtx::new(op, script, self.ctl.clone(), self.tx.clone()));
        self.ops.insert(op, ctx.clone());
        let tx = self.tx.clone();
        tokio::spawn(OP.scope(ctx, async move {
            let outcome = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Outcome { status: 999, body: format!("panicked: {message}") }
                }
            };
            let _ = tx.send(Signal::Done { op, outcome });
        }));
        self.wait(op).await
    }

    /// Resumes the `k`-th parked op (modulo their number) until it parks
    /// again or finishes; `None` if nothing is parked.
    pub async fn resume(&mut self, k: usize) -> Option<Ran> {
        if self.parked.is_empty() {
            return None;
        }
        let (op, resume) = self.parked.remove(k % self.parked.len());
        self.ctl.parked.store(self.parked.len(), Ordering::SeqCst);
        let _ = resume.send(());
        Some(self.wait(op).await)
    }

    /// Parked ops that finished on their own since the last call.
    pub fn take_finished(&mut self) -> Vec<(usize, Outcome)> {
        std::mem::take(&mut self.finished)
    }

    pub fn parked(&self) -> Vec<usize> {
        self.parked.iter().map(|(op, _)| *op).collect()
    }

    pub fn fired(&self, op: usize) -> Vec<Fired> {
        self.ops.get(&op).map(|c| c.fired()).unwrap_or_default()
    }

    /// Whether a failure was injected into `op`.
    pub fn failed(&self, op: usize) -> bool {
        self.ops.get(&op).is_some_and(|c| c.failed())
    }

    pub fn paused(&self, op: usize) -> bool {
        self.ops.get(&op).is_some_and(|c| c.paused())
    }

    /// Waits until op `target` parks or finishes; what other ops signal
    /// meanwhile is kept (a parked op finishing on its own: see `finished`).
    async fn wait(&mut self, target: usize) -> Ran {
        loop {
            match tokio::time::timeout(OP_TIMEOUT, self.rx.recv()).await {
                Ok(Some(Signal::Parked { op, resume })) => {
                    self.parked.push((op, resume));
                    self.ctl.parked.store(self.parked.len(), Ordering::SeqCst);
                    if op == target {
                        return Ran::Parked(op);
                    }
                }
                Ok(Some(Signal::Done { op, outcome })) => {
                    // Finished: whatever of it was parked will never resume.
                    self.parked.retain(|(parked, _)| *parked != op);
                    self.ctl.parked.store(self.parked.len(), Ordering::SeqCst);
                    if op == target {
                        return Ran::Done(op, outcome);
                    }
                    self.finished.push((op, outcome));
                }
                Ok(None) => unreachable!("the scheduler holds a sender"),
                Err(_) => panic!("an op neither parked nor finished within {OP_TIMEOUT:?}"),
            }
        }
    }
}
