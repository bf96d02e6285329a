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
//!
//! Logging policy: customer names and e-mail addresses are never logged.
//! Log lines name reservations, slots, sessions and outcomes; text that comes
//! from outside (error messages quoting a request body, answers of Stripe or
//! a calendar server) goes through [`scrub`] first. The level is capped at
//! DEBUG: at TRACE the Lambda runtime logs every raw event, request bodies
//! and all. `scripts/check-logs` greps every log of a test run for
//! addresses and the test customers' names.

use lambda_http::tracing::subscriber::filter::LevelFilter;
use std::str::FromStr;

/// The level `AWS_LAMBDA_LOG_LEVEL` names, else `RUST_LOG`, as the runtime
/// reads them; INFO if neither is set or the value is not a level (Lambda's
/// `FATAL`, a directive list).
///
/// TRACE is capped at DEBUG: at TRACE `lambda_runtime` logs each raw event,
/// customers' names and addresses included.
fn level(lambda_level: Option<&str>, rust_log: Option<&str>) -> LevelFilter {
    let level = lambda_level
        .or(rust_log)
        .and_then(|level| LevelFilter::from_str(level.trim()).ok())
        .unwrap_or(LevelFilter::INFO);
    level.min(LevelFilter::DEBUG)
}

/// Text from outside made fit for one log line: e-mail-shaped words become
/// `<email>`, the contents of double-quoted strings (how serde, `{:?}` and
/// most APIs quote the input they refuse) become `…`, and control
/// characters (CR, LF, ...) and Unicode line separators are escaped, so a
/// value cannot start a forged line in a text log.
///
/// For error messages and answers of other services, whose words slotguard
/// does not choose: a message quoting a request body may quote a customer's
/// name or address.
pub fn scrub(text: &str) -> String {
    let masked = mask_emails(text);
    let mut out = String::with_capacity(masked.len());
    let mut chars = masked.chars();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                if !in_quotes {
                    out.push('…');
                }
                in_quotes = !in_quotes;
            }
            '\\' if in_quotes => {
                chars.next();
            }
            _ if in_quotes => {}
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// [`scrub`] of a value's `Display`: `error = %scrubbed(&e)`.
pub fn scrubbed(value: &dyn std::fmt::Display) -> String {
    scrub(&value.to_string())
}

/// `text` with every whole-word occurrence of `word` (not inside a longer
/// run of letters and digits) replaced by `with`, for a value known to be
/// personal, e.g. the customer's name in a calendar server's answer.
pub fn redact_word(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back().or(previous);
        let after = rest[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(char::is_alphanumeric);
        let whole = boundary(before) || !word.starts_with(char::is_alphanumeric);
        let whole = whole && (boundary(after) || !word.ends_with(char::is_alphanumeric));
        let end = if whole { at + word.len() } else { at + word.chars().next().map_or(1, char::len_utf8) };
        out.push_str(&rest[..at]);
        out.push_str(if whole { with } else { &rest[at..end] });
        previous = rest[..end].chars().next_back();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Characters of an address's local part as the scan reads it: what
/// [`crate::domain::Email`] accepts, less what usually delimits a word in a
/// message.
fn local_char(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | ':' | '=' | '/' | '@'
        )
}

fn domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '.'
}

/// Replaces every `local@domain.tld` with `<email>`.
fn mask_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let before = &rest[..at];
        let local_start = before.char_indices().rev().take_while(|&(_, c)| local_char(c)).last().map(|(i, _)| i);
        let after = &rest[at + 1..];
        let domain_len = after.char_indices().find(|&(_, c)| !domain_char(c)).map_or(after.len(), |(i, _)| i);
        let domain = after[..domain_len].trim_end_matches(['.', '-']);
        let is_domain = domain.split('.').count() >= 2 && domain.split('.').all(|label| !label.is_empty());
        match local_start {
            Some(start) if is_domain => {
                out.push_str(&before[..start]);
                out.push_str("<email>");
                rest = &after[domain.len()..];
            }
            _ => {
                out.push_str(&rest[..=at]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
        assert_eq!(level(Some(" trace "), None), LevelFilter::DEBUG, "TRACE would log raw events");
    }

    #[test]
    fn scrub_masks_addresses_anywhere() {
        assert_eq!(
            scrub("status 400: Invalid email address: ada@example.com"),
            "status 400: Invalid email address: <email>"
        );
        assert_eq!(scrub("to=<ada.l+x@mail.example.co.uk>."), "to=<<email>>.");
        assert_eq!(scrub("a@b@example.com x@y"), "a@<email> x@y");
        assert_eq!(scrub("user@localhost, @example.com, a@.com"), "user@localhost, @example.com, a@.com");
        assert_eq!(scrub("Zoë.Ørsted@exämple.org!"), "<email>!");
    }

    #[test]
    fn scrub_masks_quoted_input() {
        let serde = r#"invalid type: string "Ada \"the\" Lovelace", expected struct Customer at line 1 column 40"#;
        assert_eq!(scrub(serde), r#"invalid type: string "…", expected struct Customer at line 1 column 40"#);
        assert_eq!(scrub(r#"unterminated "Ada"#), r#"unterminated "…"#);
        assert_eq!(scrub("no quotes, unknown field `coupon`"), "no quotes, unknown field `coupon`");
    }

    #[test]
    fn redact_word_takes_whole_words_only() {
        assert_eq!(redact_word("Ada: Ada Lovelace; Adam, Ada", "Ada", "<c>"), "<c>: <c> Lovelace; Adam, <c>");
        assert_eq!(redact_word("SUMMARY:Room: Zoë Ørsted\\, Jr.", "Zoë Ørsted\\, Jr.", "<c>"), "SUMMARY:Room: <c>");
        assert_eq!(redact_word("AAA", "A", "<c>"), "AAA");
        assert_eq!(redact_word("x", "", "<c>"), "x");
    }

    #[test]
    fn scrub_keeps_a_value_on_its_line() {
        assert_eq!(scrub("unknown field `x\nINFO forged`"), "unknown field `x\\nINFO forged`");
        assert_eq!(scrub("a\r\nb\tc\u{1b}[31m\u{2028}d"), "a\\r\\nb\\tc\\u{001b}[31m\\u{2028}d");
        assert!(!scrub("x\u{85}y\u{7f}").chars().any(char::is_control));
    }
}
