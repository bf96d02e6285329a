//! The SQS adapter: the calendar queue.

use crate::domain::CalendarJob;
use crate::ports::{CalendarQueue, QueueError};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;

/// The calendar queue on SQS.
#[derive(Debug, Clone)]
pub struct SqsCalendarQueue {
    client: Client,
    queue_url: String,
}

impl SqsCalendarQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl CalendarQueue for SqsCalendarQueue {
    async fn enqueue(&self, job: &CalendarJob) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).expect("a job always serialises");
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        tracing::info!(reservation_id = %job.reservation_id, action = ?job.action, "calendar job queued");
        Ok(())
    }
}
