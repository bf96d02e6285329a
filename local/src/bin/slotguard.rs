//! `slotguard`: operations on a running slotguard, local or on AWS.
//!
//! ```text
//! slotguard dlq list                  what sits in the calendar dead-letter queue, and why
//! slotguard dlq redrive               move it back to the calendar queue
//! slotguard reconcile [FROM [TO]]     compare bookings with calendars (RFC 3339; default: a day ago .. 30 days ahead)
//! slotguard catch-up                  settle the Checkout Session events Stripe made since the cursor, as the schedule does
//! slotguard attention                 payment problems only a person can settle (refunds Stripe refused, ...)
//! slotguard sign-event FILE SECRET    wrap a Stripe event file in an API Gateway event, signed now
//! slotguard setup [--demo]            local stack only: create the table and queues (and the demo resource)
//! ```
//!
//! `sign-event` prints the event `cargo lambda invoke stripe-webhook --data-file`
//! and `sam local invoke StripeWebhookFunction --event` take: the file's bytes
//! as the body and a `Stripe-Signature` for the current time (signatures go
//! stale after 300 s, so sign right before invoking).
//!
//! Reads the same environment as the functions: `SLOTGUARD_TABLE`,
//! `SLOTGUARD_CALENDAR_QUEUE_URL`, `SLOTGUARD_CALENDAR_DLQ_URL`,
//! `SLOTGUARD_SECRETS_ARN` (or the plain secret variables), and the AWS
//! SDK's region, credentials and endpoint variables. On AWS, take the values
//! from the stack's outputs.

use chrono::{DateTime, Duration, Utc};
use slotguard::adapters::sqs::{Redrive, list_dead_letters, redrive};
use slotguard::config;
use slotguard::ports::AttentionStore;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: slotguard dlq list | dlq redrive | reconcile [FROM [TO]] | catch-up | attention | sign-event FILE SECRET | setup [--demo]"
    );
    ExitCode::from(2)
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn time(arg: Option<&String>, default: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    match arg {
        None => Ok(default),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("{s:?} is not an RFC 3339 time")),
    }
}

/// An API Gateway HTTP API v2 event delivering `body` to `POST /webhooks/stripe`.
fn signed_webhook_event(body: &str, secret: &str, now: DateTime<Utc>) -> serde_json::Value {
    let signature = slotguard::adapters::stripe::sign(body, secret, now.timestamp());
    serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/stripe",
        "rawPath": "/webhooks/stripe",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature,
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "host": "localhost"
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": { "method": "POST", "path": "/webhooks/stripe", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "Stripe/1.0" },
            "requestId": format!("sign-event-{}", now.timestamp_millis()), "routeKey": "POST /webhooks/stripe", "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(), "timeEpoch": now.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}

async fn main_result(args: &[String]) -> Result<(), String> {
    if let ["sign-event", file, secret] = args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        let body = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let event = signed_webhook_event(&body, secret, Utc::now());
        println!("{}", serde_json::to_string_pretty(&event).expect("serialisable"));
        return Ok(());
    }
    let aws = config::aws().await;
    let sqs = aws_sdk_sqs::Client::new(aws.sdk());
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["dlq", "list"] => {
            let letters =
                list_dead_letters(&sqs, &env("SLOTGUARD_CALENDAR_DLQ_URL")?).await.map_err(|e| e.to_string())?;
            for letter in &letters {
                println!("{}", serde_json::to_string(letter).expect("serialisable"));
            }
            eprintln!("{} message(s) in the dead-letter queue", letters.len());
            Ok(())
        }
        ["dlq", "redrive"] => {
            let dlq = env("SLOTGUARD_CALENDAR_DLQ_URL")?;
            let queue = env("SLOTGUARD_CALENDAR_QUEUE_URL")?;
            match redrive(&sqs, &dlq, &queue).await.map_err(|e| e.to_string())? {
                Redrive::MoveTask(handle) => println!("message move task started: {handle}"),
                Redrive::Copied(n) => println!("moved {n} message(s) back to the calendar queue"),
            }
            Ok(())
        }
        ["reconcile", rest @ ..] if rest.len() <= 2 => {
            let now = Utc::now();
            let from = time(args.get(1), now - Duration::days(1))?;
            let to = time(args.get(2), now + Duration::days(30))?;
            let store = config::store(&aws).map_err(|e| e.to_string())?;
            let secrets = config::Secrets::load(&aws).await.map_err(|e| e.to_string())?;
            let calendar = config::calendars(&aws, &secrets).map_err(|e| e.to_string())?;
            let queue = config::calendar_queue(&aws).map_err(|e| e.to_string())?;
            let report = slotguard::jobs::reconcile::reconcile(&store, &calendar, &queue, from, to)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&report).expect("serialisable"));
            Ok(())
        }
        ["catch-up"] => {
            let store = config::store(&aws).map_err(|e| e.to_string())?;
            let secrets = config::Secrets::load(&aws).await.map_err(|e| e.to_string())?;
            let payments = config::payments(&secrets).map_err(|e| e.to_string())?;
            let queue = config::calendar_queue(&aws).map_err(|e| e.to_string())?;
            let settings = config::catch_up_settings().map_err(|e| e.to_string())?;
            let deps =
                slotguard::api::stripe_webhook::SettleDeps { store: &store, payments: &payments, calendar: &queue };
            // As long as the function's timeout allows a run.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(105);
            let report = slotguard::jobs::catch_up::catch_up(&deps, &settings, Utc::now(), deadline)
                .await
                .map_err(|e| slotguard::api::problem::Chain(&e).to_string())?;
            println!("{}", serde_json::to_string_pretty(&report).expect("serialisable"));
            Ok(())
        }
        ["attention"] => {
            let store = config::store(&aws).map_err(|e| e.to_string())?;
            let open = store.list_attention().await.map_err(|e| e.to_string())?;
            for item in &open {
                let reservation = item.reservation_id.as_ref().map(|r| r.as_str()).unwrap_or("-");
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    slotguard::domain::rfc3339(item.raised_at),
                    item.kind,
                    item.reference,
                    reservation,
                    item.detail
                );
            }
            eprintln!("{} item(s) need attention", open.len());
            Ok(())
        }
        ["setup", rest @ ..] if rest.is_empty() || rest == ["--demo"] => {
            let store = config::store(&aws).map_err(|e| e.to_string())?;
            slotguard_local::dev::setup(aws.sdk(), &store, !rest.is_empty()).await.map_err(|e| e.to_string())?;
            eprintln!("table {} and queues ready", store.table());
            Ok(())
        }
        _ => Err(String::new()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_result(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => usage(),
        Err(e) => {
            eprintln!("slotguard: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotguard::adapters::stripe::WebhookVerifier;
    use slotguard::ports::{Delivery, WebhookVerify};

    #[test]
    fn every_sample_stripe_event_signs_and_reads_as_a_session_event() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/stripe");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read_to_string(&path).unwrap();
            let event = signed_webhook_event(&body, "whsec_test", Utc::now());
            let request = lambda_http::request::from_str(&event.to_string()).unwrap();
            let signature = request.headers()["stripe-signature"].to_str().unwrap();
            let delivery = WebhookVerifier::new("whsec_test").verify(request.body().as_ref(), Some(signature)).unwrap();
            assert!(matches!(delivery, Delivery::Session(_)), "{}: {delivery:?}", path.display());
            assert!(WebhookVerifier::new("whsec_other").verify(request.body().as_ref(), Some(signature)).is_err());
            files += 1;
        }
        assert_eq!(files, 5, "one sample per handled event (completed paid and unpaid, async ok and failed, expired)");
    }

    /// API Gateway may hand the body over base64-encoded; the signature is
    /// over the decoded bytes, which is what the handler must verify.
    #[test]
    fn a_base64_encoded_body_verifies_on_its_decoded_bytes() {
        use base64::Engine;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/stripe/checkout.session.expired.json");
        let body = std::fs::read_to_string(path).unwrap();
        let mut event = signed_webhook_event(&body, "whsec_test", Utc::now());
        event["body"] = base64::engine::general_purpose::STANDARD.encode(&body).into();
        event["isBase64Encoded"] = true.into();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert!(matches!(request.body(), lambda_http::Body::Binary(_)), "decoded by lambda_http");
        let signature = request.headers()["stripe-signature"].to_str().unwrap();
        let delivery = WebhookVerifier::new("whsec_test").verify(request.body().as_ref(), Some(signature)).unwrap();
        assert!(matches!(delivery, Delivery::Session(_)), "{delivery:?}");
    }
}
