//! Integration tests against the real local stack (`scripts/test` starts it):
//! the official DynamoDB Local, reached over real sockets through the local
//! gateway, which calls the same handlers as the Lambda functions.
//!
//! All integration tests live in this one binary; each test gets its own table
//! and gateway from [`helpers::spawn_app`].

mod bad_input;
mod helpers;
mod holds;
mod idempotency;
