//! The reserve handler, called in-process, against the raw DynamoDB writes
//! it is built on, on the same client; and many holds racing for few slots
//! through the gateway.

use super::stats::{median, ms, quantile, ratio};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use lambda_http::Body;
use serde_json::json;
use slotguard::adapters::dynamo::DynamoStore;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

type Item = HashMap<String, AttributeValue>;

/// A `POST /v1/reservations` request as the gateway hands it to the handler.
fn reserve_request(body: &serde_json::Value, key: Option<&str>) -> lambda_http::Request {
    let mut req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/reservations")
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.body(Body::Text(body.to_string())).expect("a valid request")
}

/// The items a hold wrote: its booking item and its locks (read back by
/// scanning for its reservation id; the table is the bench's own).
async fn hold_items(store: &DynamoStore, reservation_id: &str) -> (Item, Vec<Item>) {
    let items: Vec<Item> = store
        .client()
        .scan()
        .table_name(store.table())
        .filter_expression("reservation_id = :id")
        .expression_attribute_values(":id", AttributeValue::S(reservation_id.into()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("scan for the hold's items");
    let kind = |i: &Item| i.get("kind").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let booking = items.iter().find(|i| kind(i) == "claim").cloned().expect("the hold's booking item");
    let locks = items.into_iter().filter(|i| kind(i) == "lock").collect();
    (booking, locks)
}

/// `item` under a new partition key.
fn renamed(item: &Item, pk: String) -> Item {
    let mut item = item.clone();
    item.insert("pk".into(), AttributeValue::S(pk));
    item
}

/// A conditional put as the hold's transaction writes it: the booking item
/// on `attribute_not_exists(pk)`, a lock on being free (absent or a lapsed
/// hold's), the old item returned on a failed condition.
fn hold_put(store: &DynamoStore, item: Item, lock: bool) -> TransactWriteItem {
    let mut put = Put::builder()
        .table_name(store.table())
        .set_item(Some(item))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    put = if lock {
        put.condition_expression("attribute_not_exists(pk) OR (#status = :held AND #expires_at <= :now)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":held", AttributeValue::S("HELD".into()))
            .expression_attribute_values(":now", AttributeValue::N(chrono::Utc::now().timestamp().to_string()))
    } else {
        put.condition_expression("attribute_not_exists(pk)")
    };
    TransactWriteItem::builder().put(put.build().expect("a valid put")).build()
}

#[derive(Clone, Copy)]
enum Op {
    Reserve,
    ReserveKeyed,
    RawPut,
    RawTransaction,
}

const OPS: [Op; 4] = [Op::Reserve, Op::ReserveKeyed, Op::RawPut, Op::RawTransaction];

/// Warm `reserve` (without and with an Idempotency-Key) against one raw
/// conditional `PutItem` of its booking item and one raw
/// `TransactWriteItems` of as many items as its hold writes, interleaved
/// (`n` rounds of all four, in rotating order) after `warmup` rounds.
pub async fn reserve_vs_raw(store: &DynamoStore, resource: &str, first_slot: chrono::DateTime<chrono::Utc>, n: usize) {
    let warmup = 20;
    let mut slot = 0i64;
    let mut next_body = || {
        slot += 1;
        let start = first_slot + chrono::Duration::minutes(15 * slot);
        json!({"resource_id": resource, "start": slotguard::domain::rfc3339(start),
            "customer": {"name": "Bench", "email": format!("raw{slot}@example.com")}})
    };
    // A template of what a hold writes, from a real hold.
    let r = slotguard::api::reserve::reserve(store, reserve_request(&next_body(), None)).await;
    assert_eq!(r.status(), 201, "the template hold: {:?}", r.body());
    let held: serde_json::Value = serde_json::from_slice(r.body().as_ref()).expect("a JSON answer");
    let (booking, locks) = hold_items(store, held["reservation_id"].as_str().unwrap_or_default()).await;
    let items = 1 + locks.len();

    let mut times: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    let mut failures: BTreeMap<usize, usize> = BTreeMap::new();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    for round in 0..warmup + n {
        for k in 0..OPS.len() {
            let which = (k + round) % OPS.len();
            let key = format!("raw-{run_id}-{round}");
            let pk = |op: &str| format!("BENCHRAW#{run_id}#{op}#{round}");
            let (elapsed, ok) = match OPS[which] {
                Op::Reserve | Op::ReserveKeyed => {
                    let keyed = matches!(OPS[which], Op::ReserveKeyed);
                    let req = reserve_request(&next_body(), keyed.then_some(key.as_str()));
                    let t = Instant::now();
                    let r = slotguard::api::reserve::reserve(store, req).await;
                    (t.elapsed(), r.status() == 201)
                }
                Op::RawPut => {
                    let put = store
                        .client()
                        .put_item()
                        .table_name(store.table())
                        .set_item(Some(renamed(&booking, pk("put"))))
                        .condition_expression("attribute_not_exists(pk)");
                    let t = Instant::now();
                    let r = put.send().await;
                    (t.elapsed(), r.is_ok())
                }
                Op::RawTransaction => {
                    let pk = pk("tx");
                    let mut writes = vec![hold_put(store, renamed(&booking, pk.clone()), false)];
                    for (j, lock) in locks.iter().enumerate() {
                        writes.push(hold_put(store, renamed(lock, format!("{pk}#{j}")), true));
                    }
                    let tx = store.client().transact_write_items().set_transact_items(Some(writes));
                    let t = Instant::now();
                    let r = tx.send().await;
                    (t.elapsed(), r.is_ok())
                }
            };
            if round >= warmup {
                times.entry(which).or_default().push(elapsed);
                if !ok {
                    *failures.entry(which).or_default() += 1;
                }
            }
        }
    }
    let names = [
        "reserve, no key".to_owned(),
        "reserve, Idempotency-Key".to_owned(),
        "raw PutItem, booking item".to_owned(),
        format!("raw TransactWriteItems, {items} items"),
    ];
    for (i, name) in names.iter().enumerate() {
        let t = &times[&i];
        println!(
            "  {:<36} n={:<4} p50={:>6.2} ms  p95={:>6.2} ms  failed={}",
            name,
            t.len(),
            ms(median(t)),
            ms(quantile(t, 0.95)),
            failures.get(&i).copied().unwrap_or(0)
        );
    }
    let p50 = |i: usize| median(&times[&i]);
    println!("  ratios of p50s:");
    for (i, label) in [(0, "reserve, no key"), (1, "reserve, Idempotency-Key")] {
        for (j, raw) in [(2, "raw PutItem".to_owned()), (3, format!("raw TransactWriteItems ({items} items)"))] {
            println!("    {:<62} {:>7}", format!("{label} ÷ {raw}"), ratio(p50(i), p50(j)));
        }
    }
    println!(
        "  (the hold of a 15-minute slot is one TransactWriteItems of {items} items: the booking and {} cell locks)",
        locks.len()
    );
}

/// `total` holds sent at once, spread over `slots` slots, through the gateway.
pub async fn contention(
    http: &reqwest::Client,
    base: &str,
    resource: &str,
    first_slot: chrono::DateTime<chrono::Utc>,
    slots: usize,
    total: usize,
) {
    let started = Instant::now();
    let requests = (0..total).map(|i| {
        let slot = i % slots;
        let start = first_slot + chrono::Duration::minutes(15 * slot as i64);
        let body = json!({"resource_id": resource, "start": slotguard::domain::rfc3339(start),
            "customer": {"name": "Bench", "email": format!("c{i}@example.com")}});
        let request = http.post(format!("{base}/v1/reservations")).json(&body).send();
        async move {
            match request.await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // A server error's problem type says what failed.
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    (slot, status, body["type"].as_str().unwrap_or_default().to_owned())
                }
                Err(e) => (slot, 0, if e.is_timeout() { "timeout".into() } else { "transport".into() }),
            }
        }
    });
    let results = futures::future::join_all(requests).await;
    let elapsed = started.elapsed();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut won: BTreeMap<usize, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for (slot, status, kind) in &results {
        *statuses.entry(*status).or_default() += 1;
        if *status == 0 || *status >= 500 {
            *failures.entry(format!("{status} {kind}")).or_default() += 1;
        }
        if *status == 201 {
            *won.entry(*slot).or_default() += 1;
        }
    }
    let winners = statuses.get(&201).copied().unwrap_or(0);
    let errors: usize = statuses.iter().filter(|(s, _)| **s == 0 || **s >= 500).map(|(_, n)| n).sum();
    let others: BTreeMap<u16, usize> =
        statuses.iter().filter(|(s, _)| **s != 201 && **s != 0 && **s < 500).map(|(s, n)| (*s, *n)).collect();
    println!(
        "  winners (201)={winners} (slots with one winner: {} of {slots}, with more: {})  others={others:?}  errors (5xx/transport)={errors}  {:.0} req/s  wall={:.2} s",
        won.values().filter(|n| **n == 1).count(),
        won.values().filter(|n| **n > 1).count(),
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    if errors > 0 {
        println!("    errors by status and problem type (0 = no HTTP answer): {failures:?}");
    }
}
