//! `stripe-sim`: runs the Stripe simulator until Ctrl-C.
//!
//! Environment: `STRIPE_SIM_ADDR` (default `127.0.0.1:12111`),
//! `STRIPE_SIM_WEBHOOK_URL` (unset: events are recorded, not delivered),
//! `STRIPE_SIM_WEBHOOK_SECRET` (default `whsec_local_simulator`),
//! `STRIPE_SIM_PUBLIC_URL` (default `http://` plus the bound address),
//! `STRIPE_SIM_CLOCK_OFFSET_SECS` (default 0: the simulator's clock, in
//! seconds ahead of the real one), `STRIPE_SIM_IDEMPOTENCY_TTL_SECS` (default
//! 86400: how long an idempotency key is remembered, as at Stripe).

use stripe_sim::{SimConfig, serve};

#[tokio::main]
async fn main() {
    let addr = std::env::var("STRIPE_SIM_ADDR").unwrap_or_else(|_| "127.0.0.1:12111".into());
    let defaults = SimConfig::default();
    let config = SimConfig {
        webhook_url: std::env::var("STRIPE_SIM_WEBHOOK_URL").ok().filter(|u| !u.is_empty()),
        webhook_secret: std::env::var("STRIPE_SIM_WEBHOOK_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or(defaults.webhook_secret),
        public_url: std::env::var("STRIPE_SIM_PUBLIC_URL").ok().filter(|u| !u.is_empty()),
        clock_offset_secs: std::env::var("STRIPE_SIM_CLOCK_OFFSET_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        idempotency_ttl_secs: std::env::var("STRIPE_SIM_IDEMPOTENCY_TTL_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(defaults.idempotency_ttl_secs),
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("stripe-sim: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    eprintln!(
        "stripe-sim: listening on http://{local} (client url: http://{local}); webhooks: {}",
        config.webhook_url.as_deref().unwrap_or("not delivered")
    );
    serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
}
