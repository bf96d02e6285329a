//! Stripe's JSON shapes: the objects async-stripe deserializes
//! (`stripe_shared::CheckoutSession`, `Refund`, `Event`, `List`) and Stripe's
//! error body.
//!
//! async-stripe's generated deserializers refuse an object that lacks a
//! non-`Option` field, so every such field is always written (for a session:
//! `automatic_tax`, `created`, `custom_fields`, `custom_text`, `expires_at`,
//! `id`, `livemode`, `mode`, `payment_method_types`, `payment_status`,
//! `shipping_options`; for a refund: `amount`, `created`, `currency`, `id`).
//! The rest follows what Stripe sends for a hosted, payment-mode session.

use crate::state::{Origin, Refund, Session};
use serde_json::{Map, Value, json};

/// The API version events carry: the one this async-stripe build speaks.
pub fn api_version() -> &'static str {
    stripe_shared::version::VERSION.as_str()
}

/// Where the hosted checkout page of a session lives.
pub fn hosted_url(base_url: &str, session_id: &str) -> String {
    format!("{base_url}/c/pay/{session_id}")
}

fn string_map(map: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// A `checkout.session` object.
pub fn session(s: &Session, base_url: &str) -> Value {
    let complete = s.status == "complete";
    // Stripe only shows `url` while the session can still be paid.
    let url = (s.status == "open").then(|| hosted_url(base_url, &s.id));
    let customer_details = complete.then(|| {
        json!({
            "address": null,
            "business_name": null,
            "email": s.customer_email.clone().unwrap_or_else(|| "customer@example.com".into()),
            "individual_name": null,
            "name": null,
            "phone": null,
            "tax_exempt": "none",
            "tax_ids": [],
        })
    });
    // Built in parts: one `json!` this wide exceeds the macro recursion limit.
    let mut o = Map::new();
    let head = json!({
        "id": s.id,
        "object": "checkout.session",
        "adaptive_pricing": null,
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": s.amount_total,
        "amount_total": s.amount_total,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null,
        "branding_settings": null,
        "cancel_url": s.cancel_url,
        "client_reference_id": s.client_reference_id,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": s.created,
        "currency": s.currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
        "customer": null,
        "customer_account": null,
        "customer_creation": "if_required",
        "customer_details": customer_details,
        "customer_email": s.customer_email,
        "discounts": [],
    });
    let middle = json!({
        "excluded_payment_method_types": [],
        "expires_at": s.expires_at,
        "integration_identifier": null,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": s.locale,
        "managed_payments": null,
        "metadata": string_map(&s.metadata),
        "mode": "payment",
        "name_collection": null,
        "optional_items": [],
        "origin_context": null,
        "payment_intent": s.payment_intent,
        "payment_link": null,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": s.payment_method_types,
        "payment_status": s.payment_status,
        "permissions": null,
    });
    let tail = json!({
        "phone_number_collection": {"enabled": false},
        "presentment_details": null,
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": s.status,
        "submit_type": null,
        "subscription": null,
        "success_url": s.success_url,
        "tax_id_collection": {"enabled": false, "required": "never"},
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": url,
        "wallet_options": null,
    });
    for part in [head, middle, tail] {
        if let Value::Object(m) = part {
            o.extend(m);
        }
    }
    Value::Object(o)
}

/// A `refund` object.
pub fn refund(r: &Refund) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": format!("txn_{}", &r.id[3..]),
        "charge": r.charge,
        "created": r.created,
        "currency": r.currency,
        "description": null,
        "destination_details": null,
        "failure_reason": null,
        "instructions_email": null,
        "metadata": string_map(&r.metadata),
        "next_action": null,
        "payment_intent": r.payment_intent,
        "pending_reason": null,
        "reason": r.reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    })
}

/// A `list` object around `data`.
pub fn list(data: Vec<Value>, has_more: bool, url: &str) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

/// The JSON text of an `event`: serialised once, so every delivery and
/// redelivery posts exactly the same bytes.
pub fn event(id: &str, type_: &str, created: i64, object: Value, origin: &Origin) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": api_version(),
        "created": created,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": origin.request_id, "idempotency_key": origin.idempotency_key},
        "type": type_,
    })
    .to_string()
}

/// Stripe's error body: `{"error":{"type","message","code"?,"param"?}}`.
pub fn error(type_: &str, message: &str, code: Option<&str>, param: Option<&str>) -> Value {
    let mut e = Map::new();
    e.insert("type".into(), type_.into());
    e.insert("message".into(), message.into());
    if let Some(code) = code {
        e.insert("code".into(), code.into());
        e.insert("doc_url".into(), format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")).into());
    }
    if let Some(param) = param {
        e.insert("param".into(), param.into());
    }
    json!({ "error": e })
}
