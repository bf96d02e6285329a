//! Local stand-ins for the AWS parts slotguard runs on.
//!
//! - [`gateway`]: an HTTP server that plays API Gateway: it routes every HTTP
//!   route of `template.yaml` to the very handler functions the Lambda
//!   binaries run.
//! - [`book_page`]: the booking page of `web/`, which the gateway serves at
//!   `/book/{resource_id}`.
//! - [`poller`]: plays Lambda's SQS event source mapping for the calendar
//!   writer.
//! - [`dev`]: clients for the local stack, table creation and the demo
//!   resource.

pub mod book_page;
pub mod dev;
pub mod gateway;
pub mod poller;

#[cfg(test)]
mod template_check;
