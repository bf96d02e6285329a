//! The hosted checkout page a session's `url` points at: the line items, the
//! total, and two buttons. Pay completes the session (one webhook delivery,
//! awaited) and redirects to `success_url`; Cancel redirects to `cancel_url`
//! and leaves the session open, as Stripe's back link does.

use crate::state::Session;
use crate::{Sim, webhooks};
use std::sync::Arc;

/// A hosted-page answer: status, an optional `Location`, and HTML.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub html: String,
}

impl Page {
    fn html(status: u16, title: &str, body: &str) -> Self {
        Self { status, location: None, html: layout(title, body) }
    }

    fn redirect(to: String) -> Self {
        Self { status: 303, location: Some(to), html: String::new() }
    }
}

/// Serves `/c/pay/{id}` (GET), `/c/pay/{id}/pay` and `/c/pay/{id}/cancel` (POST).
pub async fn handle(sim: &Arc<Sim>, method: &str, path: &str) -> Page {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method, &segments[..]) {
        ("GET", ["", "c", "pay", id]) => show(sim, id),
        ("POST", ["", "c", "pay", id, "pay"]) => pay(sim, id).await,
        ("POST", ["", "c", "pay", id, "cancel"]) => cancel(sim, id),
        _ => Page::html(404, "Not found", "<p>No such page.</p>"),
    }
}

fn show(sim: &Arc<Sim>, id: &str) -> Page {
    let st = sim.lock();
    let Some(s) = st.sessions.get(id) else {
        return Page::html(404, "Not found", "<p>No such Checkout Session.</p>");
    };
    if s.status != "open" {
        return Page::html(
            410,
            "Checkout Session closed",
            &format!("<p>This Checkout Session is <strong>{}</strong>.</p>", escape(s.status)),
        );
    }
    let rows: String = s
        .line_items
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td>× {}</td><td class=amount>{}</td></tr>",
                escape(&l.name),
                l.quantity,
                money(l.unit_amount * l.quantity, &s.currency)
            )
        })
        .collect();
    let email = s.customer_email.as_deref().map(|e| format!("<p>Paying as {}</p>", escape(e))).unwrap_or_default();
    let body = format!(
        "<h1>Pay {total}</h1>{email}\
         <table>{rows}<tr class=total><td>Total</td><td></td><td class=amount>{total}</td></tr></table>\
         <form method=post action=\"/c/pay/{id}/pay\"><button type=submit>Pay {total}</button></form>\
         <form method=post action=\"/c/pay/{id}/cancel\"><button type=submit class=secondary>Cancel</button></form>\
         <p class=note>Stripe simulator, test mode. Session {id}.</p>",
        total = money(s.amount_total, &s.currency),
        id = escape(&s.id),
    );
    Page::html(200, "Checkout", &body)
}

async fn pay(sim: &Arc<Sim>, id: &str) -> Page {
    let completed = sim.lock().complete(id, false);
    let (event, _) = match completed {
        Ok(done) => done,
        Err(e) => return Page::html(e.status, "Cannot pay", &format!("<p>{}</p>", escape(&e.message))),
    };
    // Stripe redirects whatever the webhook endpoint answers; the delivery's
    // status is recorded on the event.
    webhooks::deliver(sim, &event, 1).await;
    let success_url = sim.lock().sessions.get(id).and_then(|s| s.success_url.clone());
    match success_url {
        Some(url) => Page::redirect(url.replace("{CHECKOUT_SESSION_ID}", id)),
        None => Page::html(200, "Paid", "<p>Payment complete. You can close this page.</p>"),
    }
}

fn cancel(sim: &Arc<Sim>, id: &str) -> Page {
    let st = sim.lock();
    let Some(session) = st.sessions.get(id) else {
        return Page::html(404, "Not found", "<p>No such Checkout Session.</p>");
    };
    match cancel_target(session) {
        Some(url) => Page::redirect(url),
        None => Page::html(200, "Cancelled", "<p>Checkout cancelled.</p>"),
    }
}

fn cancel_target(session: &Session) -> Option<String> {
    session.cancel_url.as_ref().map(|u| u.replace("{CHECKOUT_SESSION_ID}", &session.id))
}

/// Currencies whose amounts have no minor unit, per Stripe's list.
const ZERO_DECIMAL: &[&str] =
    &["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"];

/// `4500`, `eur` → `45.00 EUR`.
pub fn money(amount: i64, currency: &str) -> String {
    let code = currency.to_uppercase();
    if ZERO_DECIMAL.contains(&currency) {
        format!("{amount} {code}")
    } else {
        format!("{}.{:02} {code}", amount / 100, amount % 100)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1f36}}\
         table{{width:100%;border-collapse:collapse;margin:1rem 0}}td{{padding:.4rem 0}}\
         .amount{{text-align:right}}.total td{{border-top:1px solid #ccc;font-weight:600}}\
         button{{width:100%;padding:.8rem;margin:.3rem 0;font-size:1rem;border:0;border-radius:6px;\
         background:#635bff;color:#fff;cursor:pointer}}button.secondary{{background:#e3e8ee;color:#1a1f36}}\
         .note{{color:#697386;font-size:.8rem}}</style></head><body>{body}</body></html>",
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_uses_minor_units_except_for_zero_decimal_currencies() {
        assert_eq!(money(4500, "eur"), "45.00 EUR");
        assert_eq!(money(5, "usd"), "0.05 USD");
        assert_eq!(money(4500, "jpy"), "4500 JPY");
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(escape("<b>\"A&B\"</b>"), "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;");
    }
}
