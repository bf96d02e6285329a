//! Tracing, initialised the Lambda runtime's way: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from `AWS_LAMBDA_LOG_LEVEL` or
//! `RUST_LOG`, and each invocation in a span carrying its request id (the
//! runtime opens those spans).
//!
//! The same subscriber as `lambda_http::tracing::init_default_subscriber`
//! (no target, no timestamp: CloudWatch stamps each line), filtered by one
//! level instead of an `EnvFilter`: `RUST_LOG` takes a level (`warn`,
//! `debug`...), not per-target directives. The filter's regex engine was
//! ~0.35 MB of every function binary.

use lambda_http::tracing::subscriber::filter::LevelFilter;
use std::str::FromStr;

/// The level `AWS_LAMBDA_LOG_LEVEL` names, else `RUST_LOG`, as the runtime
/// reads them; INFO if neither is set or the value is not a level (Lambda's
/// `FATAL`, a directive list).
fn level(lambda_level: Option<&str>, rust_log: Option<&str>) -> LevelFilter {
    lambda_level.or(rust_log).and_then(|level| LevelFilter::from_str(level.trim()).ok()).unwrap_or(LevelFilter::INFO)
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let var = |name| std::env::var(name).ok();
    let level = level(var("AWS_LAMBDA_LOG_LEVEL").as_deref(), var("RUST_LOG").as_deref());
    let logs = lambda_http::tracing::subscriber::fmt().with_target(false).without_time().with_max_level(level);
    if var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json")) {
        logs.json().init()
    } else {
        logs.init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_level_wins_then_rust_log_then_info() {
        assert_eq!(level(Some("DEBUG"), Some("error")), LevelFilter::DEBUG);
        assert_eq!(level(None, Some("warn")), LevelFilter::WARN);
        assert_eq!(level(None, None), LevelFilter::INFO);
        assert_eq!(level(Some("FATAL"), None), LevelFilter::INFO);
        assert_eq!(level(None, Some("slotguard=debug")), LevelFilter::INFO);
        assert_eq!(level(Some(" trace "), None), LevelFilter::TRACE);
    }
}
