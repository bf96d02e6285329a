//! The calendar job queue and its dead-letter queue;
//! [`adapters::sqs`](crate::adapters::sqs) implements them on SQS.

use super::Cause;
use crate::domain::CalendarJob;
use chrono::{DateTime, Utc};
use std::future::Future;

/// The calendar queue could not take a job.
#[derive(Debug, thiserror::Error)]
#[error("calendar queue unavailable")]
pub struct QueueError(#[source] pub Cause);

/// The queue feeding the calendar writer.
pub trait CalendarQueue: Send + Sync {
    fn enqueue(&self, job: &CalendarJob) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Why a calendar job was given up on, carried on its dead-letter message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterReason {
    /// `http_401`, `http_503`, `timeout`, `malformed_job`, ...
    pub kind: String,
    pub message: String,
    /// When the job was first received (SQS `ApproximateFirstReceiveTimestamp`).
    pub first_failure_at: DateTime<Utc>,
    pub receive_count: u32,
}

/// The dead-letter queue of calendar jobs.
pub trait DeadLetters: Send + Sync {
    /// Parks a job's body on the dead-letter queue with its reason.
    fn send_dead_letter(
        &self,
        body: &str,
        reason: &DeadLetterReason,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
