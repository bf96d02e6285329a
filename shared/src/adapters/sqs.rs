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
            .map_err(|e| QueueError(Box::new(e)))?;
        tracing::info!(reservation_id = %job.reservation_id, action = ?job.action, "calendar job queued");
        Ok(())
    }
}

/// Message attributes a dead-lettered job carries.
pub mod attributes {
    pub const REASON_KIND: &str = "failure_kind";
    pub const REASON: &str = "failure_reason";
    pub const FIRST_FAILURE_AT: &str = "first_failure_at";
    pub const RECEIVE_COUNT: &str = "receive_count";
}

/// The calendar jobs' dead-letter queue on SQS.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    dlq_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, dlq_url: impl Into<String>) -> Self {
        Self { client, dlq_url: dlq_url.into() }
    }
}

fn text_attribute(value: impl Into<String>) -> aws_sdk_sqs::types::MessageAttributeValue {
    aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

impl crate::ports::DeadLetters for SqsDeadLetters {
    async fn send_dead_letter(&self, body: &str, reason: &crate::ports::DeadLetterReason) -> Result<(), QueueError> {
        // SQS caps attribute values at 256 KiB; a reason is a line, keep it short.
        let message: String = reason.message.chars().take(1000).collect();
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .message_attributes(attributes::REASON_KIND, text_attribute(&reason.kind))
            .message_attributes(attributes::REASON, text_attribute(message))
            .message_attributes(
                attributes::FIRST_FAILURE_AT,
                text_attribute(crate::domain::rfc3339(reason.first_failure_at)),
            )
            .message_attributes(attributes::RECEIVE_COUNT, text_attribute(reason.receive_count.to_string()))
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        crate::metrics::count("DeadLetterSends", &[("Reason", &reason.kind)]);
        tracing::warn!(kind = %reason.kind, reason = %reason.message, "calendar job sent to the dead-letter queue");
        Ok(())
    }
}

/// A job parked on the dead-letter queue, as `slotguard dlq list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub reservation_id: Option<String>,
    pub action: Option<String>,
    pub failure_kind: Option<String>,
    pub failure_reason: Option<String>,
    pub first_failure_at: Option<String>,
    pub receive_count: Option<String>,
}

/// Lists the dead-letter queue without consuming it: each message is
/// received once (hidden for a moment so the loop sees each message once),
/// then made visible again.
pub async fn list_dead_letters(client: &Client, dlq_url: &str) -> Result<Vec<DeadLetter>, QueueError> {
    let mut seen = Vec::new();
    let mut handles = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            let attr = |name: &str| {
                m.message_attributes().and_then(|a| a.get(name)).and_then(|v| v.string_value()).map(str::to_owned)
            };
            let job: Option<serde_json::Value> = m.body().and_then(|b| serde_json::from_str(b).ok());
            seen.push(DeadLetter {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                reservation_id: job.as_ref().and_then(|j| j["reservation_id"].as_str()).map(str::to_owned),
                action: job.as_ref().and_then(|j| j["action"].as_str()).map(str::to_owned),
                failure_kind: attr(attributes::REASON_KIND),
                failure_reason: attr(attributes::REASON),
                first_failure_at: attr(attributes::FIRST_FAILURE_AT),
                receive_count: attr(attributes::RECEIVE_COUNT),
            });
            handles.extend(m.receipt_handle().map(str::to_owned));
        }
    }
    for handle in handles {
        client
            .change_message_visibility()
            .queue_url(dlq_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
    }
    Ok(seen)
}

/// How a redrive was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    /// SQS moves the messages itself (`StartMessageMoveTask`); the task's handle.
    MoveTask(String),
    /// Moved one by one (receive, send, delete): how many.
    Copied(usize),
}

/// Moves every message of the dead-letter queue back to the calendar queue:
/// with SQS's own `StartMessageMoveTask` where available, else (e.g. against
/// a local SQS without it) by receiving, re-sending and deleting each message.
pub async fn redrive(client: &Client, dlq_url: &str, queue_url: &str) -> Result<Redrive, QueueError> {
    let arn = |url: &str| {
        let url = url.to_owned();
        async move {
            client
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| QueueError(Box::new(e)))?
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
                .ok_or_else(|| QueueError(format!("{url} has no ARN").into()))
        }
    };
    let (source, destination) = (arn(dlq_url).await?, arn(queue_url).await?);
    match client.start_message_move_task().source_arn(&source).destination_arn(&destination).send().await {
        Ok(out) => return Ok(Redrive::MoveTask(out.task_handle().unwrap_or_default().to_owned())),
        Err(e) => tracing::info!(error = %DisplayErrorContext(&e), "no message move task; moving one by one"),
    }
    let mut moved = 0;
    loop {
        let out = client
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        if out.messages().is_empty() {
            return Ok(Redrive::Copied(moved));
        }
        for m in out.messages() {
            // Sent before deleted: a crash in between duplicates a job, which
            // the calendar writer absorbs (event ids are deterministic).
            client
                .send_message()
                .queue_url(queue_url)
                .message_body(m.body().unwrap_or_default())
                .send()
                .await
                .map_err(|e| QueueError(Box::new(e)))?;
            client
                .delete_message()
                .queue_url(dlq_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| QueueError(Box::new(e)))?;
            moved += 1;
        }
    }
}
