//! A local stand-in for Lambda's SQS event source mapping: receives a batch,
//! hands it to a handler as an `SqsEvent`, deletes the messages the handler
//! did not report as failures, and leaves the failures to reappear after the
//! queue's visibility timeout, exactly as the real mapping with
//! `ReportBatchItemFailures` does.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// Receives one batch (up to 10) and runs `handler` on it. Returns how many
/// messages it received.
pub async fn poll_once<F, Fut>(sqs: &Client, queue_url: &str, handler: F) -> Result<usize, String>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(&e).to_string())?;
    let messages = out.messages().to_vec();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(lambda_record).collect();
    let response = handler(event).await;
    let failed: HashSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("id and receipt handle are set")
        })
        .collect();
    if !done.is_empty() {
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(done))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
    }
    Ok(messages.len())
}

/// Polls until `shutdown` completes.
pub async fn run<F, Fut>(sqs: Client, queue_url: String, handler: F, shutdown: impl Future<Output = ()>)
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    tokio::pin!(shutdown);
    loop {
        let polled = tokio::select! {
            polled = poll_once(&sqs, &queue_url, &handler) => polled,
            () = &mut shutdown => return,
        };
        if let Err(e) = polled {
            tracing::warn!(error = %e, "polling the calendar queue failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A received message as the Lambda event source mapping hands it to a
/// function: id, receipt handle, body and system attributes
/// (`ApproximateReceiveCount`, ...).
pub fn lambda_record(m: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = m.message_id().map(str::to_owned);
    record.receipt_handle = m.receipt_handle().map(str::to_owned);
    record.body = m.body().map(str::to_owned);
    record.attributes =
        m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect()).unwrap_or_default();
    record.event_source = Some("aws:sqs".into());
    record
}
