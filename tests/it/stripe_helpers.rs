//! Driving payments: checkout through the API, the simulator's control routes,
//! and hand-made events (for deliveries in an order the simulator would not
//! produce), signed exactly as Stripe signs them.

use crate::helpers::*;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A held reservation with its Checkout Session.
pub struct Checkout {
    pub reservation_id: String,
    pub session_id: String,
    pub checkout_url: String,
    pub start: DateTime<Utc>,
}

impl TestApp {
    /// Reserves `start` and creates its Checkout Session.
    pub async fn reserve_and_checkout(&self, resource: &str, start: DateTime<Utc>, email: &str) -> Checkout {
        let r = self.reserve(resource, start, email).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let reservation_id = self.remember(&r.json().await.unwrap());
        let (status, body) = self.checkout(&reservation_id).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Checkout {
            reservation_id,
            session_id: body["session_id"].as_str().unwrap().to_owned(),
            checkout_url: body["checkout_url"].as_str().unwrap().to_owned(),
            start,
        }
    }

    /// Checks out a reservation as the holder of its secret.
    pub async fn checkout(&self, reservation_id: &str) -> (StatusCode, Value) {
        let r = self.checkout_raw(reservation_id).await;
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// `POST /v1/reservations/{id}/checkout` as the holder of its secret.
    pub async fn checkout_raw(&self, reservation_id: &str) -> reqwest::Response {
        let req = self.http.post(self.url(&format!("/v1/reservations/{reservation_id}/checkout")));
        self.as_holder(reservation_id, req).send().await.unwrap()
    }

    /// POSTs a simulator control route; returns its JSON answer.
    pub async fn sim_control(&self, path: &str) -> Value {
        let r = self.http.post(format!("{}{path}", self.sim)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn sim_get(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.sim)).send().await.unwrap().json().await.unwrap()
    }

    /// Pays the session at the simulator, which delivers `checkout.session.completed`.
    pub async fn pay(&self, session_id: &str, query: &str) -> Value {
        self.sim_control(&format!("/_sim/checkout/sessions/{session_id}/complete?{query}")).await
    }

    /// Every refund the simulator made.
    pub async fn refunds(&self) -> Vec<Value> {
        self.sim_get("/_sim/refunds").await["refunds"].as_array().unwrap().clone()
    }

    /// The session as Stripe's API returns it.
    pub async fn stripe_session(&self, session_id: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/v1/checkout/sessions/{session_id}", self.sim))
            .bearer_auth(STRIPE_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// POSTs a webhook body with the given `Stripe-Signature` (or none).
    pub async fn post_webhook(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/webhooks/stripe"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        req.send().await.unwrap()
    }

    /// Delivers a hand-made, correctly signed event; returns the HTTP status.
    pub async fn deliver(&self, body: &str) -> StatusCode {
        let sig = slotguard::adapters::stripe::sign(body, WEBHOOK_SECRET, Utc::now().timestamp());
        self.post_webhook(body, Some(&sig)).await.status()
    }

    /// The messages on this app's calendar queue (received, then left to reappear).
    pub async fn queued_jobs(&self) -> Vec<Value> {
        let out = self
            .queue
            .client()
            .receive_message()
            .queue_url(self.queue.queue_url())
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        out.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect()
    }

    /// The keys of a reservation's booking item and of all its locks.
    pub async fn hold_keys(&self, reservation_id: &str) -> Vec<Item> {
        use slotguard::adapters::dynamo::items::{claim_key, lock_key};
        use slotguard::ports::ClaimStore;
        let id = slotguard::domain::ReservationId::parse(reservation_id).unwrap();
        let claim = self.store.get_claim(&id).await.unwrap().expect("the booking item");
        let mut keys = vec![claim_key(&id)];
        keys.extend(claim.locks().iter().map(|(host, l)| lock_key(host, l)));
        keys
    }

    /// Makes a hold lapse now, as if its time had passed: its booking item
    /// and its locks (the items stay, as TTL deletion is lazy).
    pub async fn lapse_hold(&self, reservation_id: &str) {
        for key in self.hold_keys(reservation_id).await {
            self.store
                .client()
                .update_item()
                .table_name(self.store.table())
                .set_key(Some(key))
                .update_expression("SET expires_at = :past")
                .expression_attribute_values(
                    ":past",
                    aws_sdk_dynamodb::types::AttributeValue::N(
                        (Utc::now() - Duration::seconds(1)).timestamp().to_string(),
                    ),
                )
                .send()
                .await
                .unwrap();
        }
    }

    /// Deletes a hold's booking item and locks, as DynamoDB's TTL sweeper does some time after it lapsed.
    pub async fn sweep_hold(&self, reservation_id: &str) {
        for key in self.hold_keys(reservation_id).await {
            self.store.client().delete_item().table_name(self.store.table()).set_key(Some(key)).send().await.unwrap();
        }
    }

    /// The claim item of a slot, raw.
    pub async fn claim_item(&self, reservation_id: &str) -> Option<Item> {
        let id = slotguard::domain::ReservationId::parse(reservation_id).unwrap();
        let key = slotguard::adapters::dynamo::items::claim_key(&id);
        self.store
            .client()
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    pub async fn status_text(&self, reservation_id: &str) -> String {
        let (status, body) = self.status_of(reservation_id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }
}

/// A Stripe event of `type_` about `session` (as the API returns it).
pub fn event(type_: &str, session: &Value) -> String {
    json!({
        "id": format!("evt_test_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": type_,
        "data": { "object": session },
    })
    .to_string()
}
