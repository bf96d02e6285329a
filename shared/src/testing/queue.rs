//! [`MemoryQueue`]: the calendar queue and its dead-letter queue in memory.

use super::{Faults, lock};
use crate::domain::CalendarJob;
use crate::ports::{CalendarQueue, DeadLetterReason, DeadLetters, QueueError};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Queues {
    jobs: Vec<CalendarJob>,
    dead_letters: Vec<(String, DeadLetterReason)>,
}

/// The calendar queue and its dead-letter queue: records what is sent to each.
#[derive(Default)]
pub(crate) struct MemoryQueue {
    queues: Mutex<Queues>,
    faults: Faults<QueueError>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call of `op` (`enqueue`, `send_dead_letter`) fail.
    pub fn fail_next(&self, op: &'static str) {
        self.faults.push(op, QueueError(format!("{op}: the queue is down").into()));
    }

    /// The calendar jobs enqueued, in order.
    pub fn jobs(&self) -> Vec<CalendarJob> {
        lock(&self.queues).jobs.clone()
    }

    /// The bodies parked on the dead-letter queue, with their reasons.
    pub fn dead_letters(&self) -> Vec<(String, DeadLetterReason)> {
        lock(&self.queues).dead_letters.clone()
    }
}

impl CalendarQueue for MemoryQueue {
    async fn enqueue(&self, job: &CalendarJob) -> Result<(), QueueError> {
        self.faults.take("enqueue")?;
        lock(&self.queues).jobs.push(job.clone());
        Ok(())
    }
}

impl DeadLetters for MemoryQueue {
    async fn send_dead_letter(&self, body: &str, reason: &DeadLetterReason) -> Result<(), QueueError> {
        self.faults.take("send_dead_letter")?;
        lock(&self.queues).dead_letters.push((body.to_owned(), reason.clone()));
        Ok(())
    }
}
