//! Webhook delivery: POSTs an event's JSON to the configured endpoint, signed
//! the way Stripe signs it.

use crate::Sim;
use std::sync::Arc;

/// Delivers event `event_id` `times` times, all at once (as Stripe may
/// deliver one event more than once, and concurrently), and records each
/// answer on the event. Returns the statuses in request order; 0 means no
/// HTTP answer. Without a webhook URL nothing is sent and the result is empty.
///
/// While the endpoint is down (`POST /_sim/webhooks?down=true`) nothing is
/// sent either, but each skipped delivery is recorded as 0, as an attempt
/// that got no answer, so a test sees the event was dropped.
pub async fn deliver(sim: &Arc<Sim>, event_id: &str, times: usize) -> Vec<u16> {
    let Some(url) = sim.config.webhook_url.clone() else {
        return Vec::new();
    };
    let Some(body) = sim.lock().event(event_id).map(|e| e.body.clone()) else {
        return Vec::new();
    };
    let attempts = (0..times).map(|_| {
        let (url, body) = (url.clone(), body.clone());
        async move {
            // Read per attempt: a delayed delivery sees the endpoint as it is
            // when the delivery is due.
            let down = sim.lock().webhooks_down;
            let status = if down {
                tracing::info!(event_id, "webhook endpoint down: delivery skipped");
                0
            } else {
                post(sim, &url, body).await
            };
            if let Some(event) = sim.lock().event_mut(event_id) {
                event.deliveries.push(status);
            }
            status
        }
    });
    futures::future::join_all(attempts).await
}

/// One delivery: a fresh `t=` timestamp and signature each time, as Stripe
/// re-signs retries.
async fn post(sim: &Sim, url: &str, body: String) -> u16 {
    let signature = stripe_webhook::Webhook::generate_test_header(&body, &sim.config.webhook_secret, None);
    let sent = sim
        .http
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature)
        .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => response.status().as_u16(),
        Err(e) => {
            tracing::warn!(error = %e, url, "webhook delivery got no answer");
            0
        }
    }
}

/// Delivers in the background, for routes that answer before delivering.
pub fn spawn_deliveries(sim: &Arc<Sim>, events: Vec<String>, times: usize, delay_ms: u64) {
    if events.is_empty() {
        return;
    }
    let sim = sim.clone();
    tokio::spawn(async move {
        if delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        }
        for event in events {
            deliver(&sim, &event, times).await;
        }
    });
}
