//! Tracing, initialised the Lambda runtime's way: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from `AWS_LAMBDA_LOG_LEVEL` or
//! `RUST_LOG`, and each invocation in a span carrying its request id.

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    lambda_http::tracing::init_default_subscriber();
}
