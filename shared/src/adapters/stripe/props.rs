//! Property tests of webhook verification: whatever body and
//! `Stripe-Signature` header arrive, [`WebhookVerifier::verify`] returns
//! instead of panicking; a correctly signed Stripe-shaped event is accepted
//! whatever its type, version or fields (a refusal would make Stripe retry
//! for days); a header without the genuine signature is refused.
//!
//! These tests do not look at which [`Delivery`] comes out.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

const CASES: u32 = 256;

/// `CASES` cases, or `PROPTEST_CASES` for a longer run. A failure is reported
/// with its minimal input rather than saved into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}
const SECRET: &str = "whsec_props_secret";

/// The sample events of `events/stripe/`, one per event type slotguard handles.
const SAMPLES: [&str; 5] = [
    include_str!("../../../../events/stripe/checkout.session.completed.json"),
    include_str!("../../../../events/stripe/checkout.session.completed.unpaid.json"),
    include_str!("../../../../events/stripe/checkout.session.async_payment_succeeded.json"),
    include_str!("../../../../events/stripe/checkout.session.async_payment_failed.json"),
    include_str!("../../../../events/stripe/checkout.session.expired.json"),
];

const EVENT_TYPES: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "charge.refunded",
    "checkout.session.unknown_future_type",
    "",
];

/// Keys of an event and of a Checkout Session that the readers look at.
const KEYS: &[&str] = &[
    "id",
    "object",
    "type",
    "data",
    "api_version",
    "created",
    "livemode",
    "pending_webhooks",
    "request",
    "payment_status",
    "status",
    "mode",
    "metadata",
    "reservation_id",
    "slot",
    "slot_end",
    "customer_name",
    "client_reference_id",
    "amount_total",
    "currency",
    "payment_intent",
    "customer_details",
    "customer_email",
    "email",
    "expires_at",
];

fn now_ts() -> i64 {
    Utc::now().timestamp()
}

fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(SECRET)
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,30}",
        prop::sample::select(vec![
            "",
            "paid",
            "unpaid",
            "no_payment_required",
            "complete",
            "open",
            "expired",
            "payment",
            "eur",
            "EUR",
            "2026-09-30.endive",
            "2019-01-01",
            "rsv_demo_20300107T080000_0123456789abcdef0123456789abcdef",
            "rsv_demo_99999999T999999_0123456789abcdef0123456789abcdef",
            "pi_3Example",
            "cs_test_1",
            "\u{0}",
            "💥",
            "2030-01-07T08:30:00Z",
            "not a time",
        ])
        .prop_map(str::to_owned),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, -1, 4500, 99_999_999, i64::MAX, i64::MIN]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        nasty_string().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => nasty_string()]
}

/// Where in an event a mutation applies.
#[derive(Debug, Clone, Copy)]
enum Place {
    Event,
    Session,
    Metadata,
    CustomerDetails,
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove(Place, String),
    Set(Place, String, Value),
    Type(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let place = prop::sample::select(vec![
        Place::Event,
        Place::Session,
        Place::Session,
        Place::Metadata,
        Place::CustomerDetails,
    ]);
    prop_oneof![
        2 => (place.clone(), json_key()).prop_map(|(p, k)| Mutation::Remove(p, k)),
        3 => (place, json_key(), json_value()).prop_map(|(p, k, v)| Mutation::Set(p, k, v)),
        1 => prop_oneof![prop::sample::select(EVENT_TYPES).prop_map(str::to_owned), nasty_string()].prop_map(Mutation::Type),
    ]
}

fn map_at(event: &mut Value, place: Place) -> Option<&mut serde_json::Map<String, Value>> {
    let v = match place {
        Place::Event => Some(event),
        Place::Session => event.pointer_mut("/data/object"),
        Place::Metadata => event.pointer_mut("/data/object/metadata"),
        Place::CustomerDetails => event.pointer_mut("/data/object/customer_details"),
    };
    v.and_then(Value::as_object_mut)
}

fn apply(event: &mut Value, m: &Mutation) {
    match m {
        Mutation::Remove(place, key) => {
            if let Some(map) = map_at(event, *place) {
                map.remove(key);
            }
        }
        Mutation::Set(place, key, value) => {
            if let Some(map) = map_at(event, *place) {
                map.insert(key.clone(), value.clone());
            }
        }
        Mutation::Type(t) => event["type"] = Value::String(t.clone()),
    }
}

/// A Stripe-shaped event: one of the samples with some fields removed,
/// replaced or added, and maybe another type.
fn stripe_event() -> impl Strategy<Value = String> {
    (0..SAMPLES.len(), prop::collection::vec(mutation(), 0..8), any::<bool>()).prop_map(|(i, mutations, pretty)| {
        let mut event: Value = serde_json::from_str(SAMPLES[i]).unwrap();
        for m in &mutations {
            apply(&mut event, m);
        }
        if pretty { serde_json::to_string_pretty(&event).unwrap() } else { serde_json::to_string(&event).unwrap() }
    })
}

/// A `Stripe-Signature` header that is not the genuine one for the body.
fn forged_header() -> impl Strategy<Value = String> {
    let t = prop_oneof![
        Just(now_ts().to_string()),
        any::<i64>().prop_map(|t| t.to_string()),
        prop::sample::select(vec!["", "-0", "+1", "1e9", "99999999999999999999", " 1"]).prop_map(str::to_owned),
    ];
    let v1 = prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{0,70}", nasty_string()];
    let pair = prop_oneof![
        t.prop_map(|t| format!("t={t}")),
        v1.prop_map(|v| format!("v1={v}")),
        "[a-z0-9]{0,3}=[ -~]{0,8}",
        nasty_string(),
    ];
    prop_oneof![
        4 => prop::collection::vec(pair, 0..5).prop_map(|p| p.join(",")),
        1 => nasty_string(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, signed as Stripe would sign their text: no panic;
    /// a body that is not UTF-8 is refused.
    #[test]
    fn signed_arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let header = sign(&String::from_utf8_lossy(&body), SECRET, now_ts());
        let result = verifier().verify(&body, Some(&header));
        if std::str::from_utf8(&body).is_err() {
            prop_assert!(matches!(result, Err(SignatureError::NotText)), "{:?}", result);
        }
    }

    /// Arbitrary text, correctly signed: no panic.
    #[test]
    fn signed_arbitrary_text_never_panics(body in prop_oneof![any::<String>(), "[{}\\[\\]\":,a-z0-9 ]{0,64}"]) {
        let header = sign(&body, SECRET, now_ts());
        let _ = verifier().verify(body.as_bytes(), Some(&header));
    }

    /// A Stripe-shaped event, correctly signed, is accepted whatever its
    /// type and fields: 200 and act or ignore, never a refusal Stripe retries.
    #[test]
    fn signed_stripe_shaped_events_are_accepted(body in stripe_event()) {
        let header = sign(&body, SECRET, now_ts());
        let result = verifier().verify(body.as_bytes(), Some(&header));
        prop_assert!(result.is_ok(), "a genuine event was refused: {:?}\n{}", result, body);
    }

    /// Any header that does not carry the genuine signature is refused,
    /// without a panic; adding the genuine `v1` to junk makes it pass.
    #[test]
    fn forged_headers_are_refused(body in stripe_event(), header in forged_header()) {
        let result = verifier().verify(body.as_bytes(), Some(&header));
        prop_assert!(result.is_err(), "a forged header was accepted: {:?}", header);
        let genuine = sign(&body, SECRET, now_ts());
        let v1 = genuine.split_once(",v1=").unwrap().1;
        let with_genuine = format!("t={},{header},v1={v1}", now_ts());
        // The junk may carry its own `t=` (the last wins) or an unparsable pair;
        // only a well-formed header with the right `t` must pass.
        let junk_is_harmless = header.split(',').all(|p| p.split_once('=').is_some_and(|(k, _)| k != "t"));
        let result = verifier().verify(body.as_bytes(), Some(&with_genuine));
        if junk_is_harmless {
            prop_assert!(result.is_ok(), "genuine v1 among junk refused: {:?} for {:?}", result, with_genuine);
        }
    }

    /// Signed with any timestamp: no panic, and accepted only within the tolerance.
    #[test]
    fn any_signature_timestamp_is_handled(
        body in stripe_event(),
        t in prop_oneof![
            4 => (-400i64..=400).prop_map(|d| now_ts() + d),
            1 => any::<i64>(),
            1 => prop::sample::select(vec![0, -1, i64::MAX, i64::MIN, i64::MIN + 1]),
        ],
    ) {
        let header = sign(&body, SECRET, t);
        let result = verifier().verify(body.as_bytes(), Some(&header));
        let now = now_ts();
        let within = t.checked_sub(now).is_some_and(|d| d.abs() <= 290);
        let outside = t.checked_sub(now).is_none_or(|d| d.abs() > 310);
        if within {
            prop_assert!(result.is_ok(), "t={} refused: {:?}", t, result);
        }
        if outside {
            prop_assert!(matches!(result, Err(SignatureError::Stale)), "t={} gave {:?}", t, result);
        }
    }
}

#[test]
fn the_samples_are_accepted_as_they_are() {
    for body in SAMPLES {
        let result = verifier().verify(body.as_bytes(), Some(&sign(body, SECRET, now_ts())));
        assert!(result.is_ok(), "{result:?}");
    }
}

/// Signed with `t=-9223372036854775808`, an event overflowed `now - t` inside
/// async-stripe (a panic in debug builds). It needs the signing secret, so
/// no one but Stripe or slotguard itself could send it; it is refused as stale.
#[test]
fn a_timestamp_at_the_end_of_i64_is_stale() {
    let body = SAMPLES[0];
    for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let result = verifier().verify(body.as_bytes(), Some(&sign(body, SECRET, t)));
        assert!(matches!(result, Err(SignatureError::Stale)), "t={t}: {result:?}");
    }
}

/// The scheme against an independent computation (Python's `hmac`), and the
/// header forms Stripe sends: several `v1` during a secret roll, `v0` ignored.
#[test]
fn signatures_follow_stripes_scheme() {
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const MAC: &str = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";
    let at = 1_700_000_000;
    let check = |header: &str, now: i64| check_signature(BODY, header, "whsec_test", now);
    assert_eq!(sign(std::str::from_utf8(BODY).unwrap(), "whsec_test", at), format!("t={at},v1={MAC}"));
    assert_eq!(check(&format!("t={at},v1={MAC}"), at), Ok(()));
    assert_eq!(check(&format!("t={at},v1={}", MAC.to_uppercase()), at), Ok(()));
    assert_eq!(check(&format!("t={at},v0=00,v1={},v1={MAC}", "ab".repeat(32)), at + 300), Ok(()));
    assert_eq!(check(&format!("t={at},v1={MAC}"), at + 301), Err(SignatureError::Stale));
    assert_eq!(check(&format!("t={at},v1={MAC}"), at - 301), Err(SignatureError::Stale));
    assert_eq!(check(&format!("t={},v1={MAC}", at + 1), at), Err(SignatureError::Mismatch));
    assert_eq!(check(&format!("t={at},v0={MAC}"), at), Err(SignatureError::Mismatch));
    assert_eq!(check(&format!("v1={MAC}"), at), Err(SignatureError::Mismatch));
    assert_eq!(check(&format!("t=soon,v1={MAC}"), at), Err(SignatureError::Malformed));
    assert_eq!(
        check_signature(br#"{"id":"evt_2"}"#, &format!("t={at},v1={MAC}"), "whsec_test", at),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(check_signature(BODY, &format!("t={at},v1={MAC}"), "whsec_other", at), Err(SignatureError::Mismatch));
}
