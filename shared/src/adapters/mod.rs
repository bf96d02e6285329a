//! The only code that talks to the outside world: each module implements
//! [`crate::ports`] traits on one service, and nothing outside this folder
//! imports an SDK or HTTP client (`scripts/check-imports` checks it).
//!
//! - [`dynamo`]: every storage port on one DynamoDB table; item layout in
//!   [`dynamo::items`].
//! - [`sqs`]: the calendar job queue and its dead-letter queue, with the
//!   operator's list and redrive.
//! - [`stripe`]: Checkout Sessions and refunds through async-stripe, and the
//!   webhook signature check.
//! - [`caldav`] (with its [`caldav::ics`] and `xml` readers) and
//!   [`google`]: the calendar port on CalDAV and Google Calendar; [`calendars`]
//!   picks between them per resource; [`http`] is their shared HTTP client.
//! - [`aws`]: the AWS SDK configuration the DynamoDB, SQS and Secrets Manager
//!   clients are built from.

pub mod aws;
pub mod caldav;
pub mod calendars;
pub mod dynamo;
pub mod google;
pub mod http;
pub mod sqs;
pub mod stripe;

/// Makes aws-lc-rs the process's TLS crypto provider. Two providers are
/// compiled in (the AWS SDK's aws-lc-rs and ring, which reqwest brings), and
/// rustls refuses to guess between them; every client constructor here calls
/// this first. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
