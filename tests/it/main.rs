//! Integration tests against the real local stack (`scripts/test` starts it):
//! the official DynamoDB Local and moto's SQS, reached over real sockets
//! through the local gateway, which calls the same handlers as the Lambda
//! functions; Stripe is the in-repo simulator speaking Stripe's HTTP API to
//! the real async-stripe client.
//!
//! All integration tests live in this one binary; each test gets its own table
//! and gateway from [`helpers::spawn_app`].

mod authorization;
mod bad_input;
mod booking_types;
mod busy;
mod calendar_adapters;
mod calendar_flow;
mod calendar_targets;
mod catch_up;
mod event_orders;
mod fakes;
pub(crate) mod harness;
mod helpers;
mod holds;
mod hostile;
mod idempotency;
mod openapi;
mod payments;
mod seats;
mod signatures;
mod stripe_helpers;
mod teams;
mod wire_faults;
