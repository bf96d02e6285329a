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
//!   picks between them per resource and holds the rules a resource's
//!   calendar must satisfy; [`http`] is their shared HTTP client,
//!   [`outbound`] the policy on where it may connect, and
//!   [`calendar_secrets`] the per-resource credentials it sends.
//! - [`aws`]: the AWS SDK configuration the DynamoDB, SQS and Secrets Manager
//!   clients are built from.
//! - [`tls`]: the one crypto provider and the compiled-in roots every HTTPS
//!   client here uses.

pub mod aws;
mod busy_source;
pub mod caldav;
pub mod calendar_secrets;
pub mod calendars;
pub mod dynamo;
pub mod google;
pub mod http;
pub mod outbound;
pub mod sqs;
pub mod stripe;
pub mod tls;

pub use tls::install_crypto_provider;
