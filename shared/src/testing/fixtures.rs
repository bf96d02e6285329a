//! The sample events of `events/` as test input: [`Fixture`] loads one,
//! edits it (body, headers, path and query parameters, any JSON field) and
//! turns it into what a handler or job takes, the way the Lambda runtime
//! would (`lambda_http::request::from_str` for API Gateway events).
//!
//! The domain values the samples are about (the `demo` resource, the
//! reservation id, the customer, the reservation secret) are read from the samples
//! too, so the tests follow them if they change.

use crate::domain::{
    Claim, ClaimStatus, Customer, ReservationId, ReservationStatus, Resource, ResourceId, ResourceSpec,
};
use crate::ports::ReservationRecord;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Duration, Utc};
use lambda_http::Request;
use serde_json::Value;

/// The files of `events/`, compiled in.
pub(crate) mod events {
    pub const AVAILABILITY: &str = include_str!("../../../events/apigw-availability.json");
    pub const CANCEL: &str = include_str!("../../../events/apigw-cancel.json");
    pub const RESCHEDULE: &str = include_str!("../../../events/apigw-reschedule.json");
    pub const CHECKOUT: &str = include_str!("../../../events/apigw-checkout.json");
    pub const PUT_RESOURCE: &str = include_str!("../../../events/apigw-put-resource.json");
    pub const RESERVATION_STATUS: &str = include_str!("../../../events/apigw-reservation-status.json");
    pub const RESERVE: &str = include_str!("../../../events/apigw-reserve.json");
    pub const STRIPE_WEBHOOK: &str = include_str!("../../../events/apigw-stripe-webhook.json");
    pub const SCHEDULE_RECONCILE: &str = include_str!("../../../events/schedule-reconcile.json");
    pub const SCHEDULE_CATCH_UP: &str = include_str!("../../../events/schedule-catch-up.json");
    pub const SQS_CALENDAR_JOBS: &str = include_str!("../../../events/sqs-calendar-jobs.json");

    /// Stripe events (bodies of the webhook's request), all about one session.
    pub mod stripe {
        pub const COMPLETED: &str = include_str!("../../../events/stripe/checkout.session.completed.json");
        pub const COMPLETED_UNPAID: &str =
            include_str!("../../../events/stripe/checkout.session.completed.unpaid.json");
        pub const ASYNC_SUCCEEDED: &str =
            include_str!("../../../events/stripe/checkout.session.async_payment_succeeded.json");
        pub const ASYNC_FAILED: &str =
            include_str!("../../../events/stripe/checkout.session.async_payment_failed.json");
        pub const EXPIRED: &str = include_str!("../../../events/stripe/checkout.session.expired.json");
    }
}

/// A sample event, being edited.
#[derive(Debug, Clone)]
pub(crate) struct Fixture(Value);

impl Fixture {
    /// Loads one of [`events`].
    pub fn load(json: &str) -> Self {
        Self(serde_json::from_str(json).expect("the sample events are JSON"))
    }

    /// Sets the value at JSON pointer `pointer` (e.g. `/data/object/id`),
    /// creating the objects on the way.
    pub fn set(mut self, pointer: &str, value: impl Into<Value>) -> Self {
        let slot = pointer.split('/').skip(1).map(unescape).fold(&mut self.0, |v, token| {
            if let Value::Array(items) = v {
                return &mut items[token.parse::<usize>().expect("an array index")];
            }
            if !v.is_object() {
                *v = Value::Object(serde_json::Map::new());
            }
            v.as_object_mut().expect("an object").entry(token).or_insert(Value::Null)
        });
        *slot = value.into();
        self
    }

    /// Removes the field at `pointer`, if there is one.
    pub fn remove(mut self, pointer: &str) -> Self {
        let (parent, name) = pointer.rsplit_once('/').expect("a JSON pointer");
        if let Some(Value::Object(fields)) = self.0.pointer_mut(parent) {
            fields.remove(&unescape(name));
        }
        self
    }

    /// The value at `pointer`.
    pub fn get(&self, pointer: &str) -> &Value {
        self.0.pointer(pointer).unwrap_or_else(|| panic!("the sample has no {pointer}"))
    }

    /// The text at `pointer`.
    pub fn text_at(&self, pointer: &str) -> &str {
        self.get(pointer).as_str().unwrap_or_else(|| panic!("{pointer} is not text"))
    }

    /// The event as JSON text.
    pub fn text(&self) -> String {
        self.0.to_string()
    }

    /// An API Gateway event's body, as text.
    pub fn body(self, body: impl Into<String>) -> Self {
        self.set("/body", body.into()).set("/isBase64Encoded", false)
    }

    /// An API Gateway event whose JSON body has `value` at `pointer`.
    pub fn body_field(self, pointer: &str, value: impl Into<Value>) -> Self {
        let body = Fixture::load(self.text_at("/body")).set(pointer, value).text();
        self.body(body)
    }

    /// An API Gateway event with header `name` (lower case) set to `value`.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.set(&format!("/headers/{name}"), value)
    }

    pub fn without_header(self, name: &str) -> Self {
        self.remove(&format!("/headers/{name}"))
    }

    /// An API Gateway event with path parameter `{id}` set to `id`.
    pub fn path_id(self, id: &str) -> Self {
        self.set("/pathParameters/id", id)
    }

    /// An API Gateway event with the raw query string `query` (what lambda_http reads).
    pub fn query(self, query: &str) -> Self {
        self.set("/rawQueryString", query).remove("/queryStringParameters")
    }

    /// An API Gateway event as the handler receives it.
    pub fn request(&self) -> Request {
        lambda_http::request::from_str(&self.text()).expect("lambda_http reads the event")
    }

    /// An SQS event as the calendar writer receives it.
    pub fn sqs(&self) -> SqsEvent {
        serde_json::from_value(self.0.clone()).expect("an SQS event")
    }

    /// A scheduler event as reconcile receives it.
    pub fn schedule(&self) -> EventBridgeEvent {
        serde_json::from_value(self.0.clone()).expect("an EventBridge event")
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The resource the samples are about (`demo`), as `apigw-put-resource.json` defines it.
pub(crate) fn sample_resource() -> Resource {
    let put = Fixture::load(events::PUT_RESOURCE);
    let spec: ResourceSpec = serde_json::from_str(put.text_at("/body")).expect("the sample resource");
    let id = ResourceId::parse(put.text_at("/pathParameters/id")).expect("the sample resource id");
    Resource::from_spec(id, spec).expect("a valid resource")
}

/// The reservation the samples are about (the id in their paths).
pub(crate) fn sample_reservation() -> ReservationId {
    let id = Fixture::load(events::CHECKOUT).text_at("/pathParameters/id").to_owned();
    ReservationId::parse(&id).expect("the sample reservation id")
}

/// The customer of `apigw-reserve.json`.
pub(crate) fn sample_customer() -> Customer {
    let body: Value = serde_json::from_str(Fixture::load(events::RESERVE).text_at("/body")).expect("JSON");
    let text = |field: &str| body["customer"][field].as_str().expect("a customer field").to_owned();
    Customer::parse(&text("name"), &text("email")).expect("a valid customer")
}

/// The reservation secret `apigw-cancel.json` (and the checkout and
/// reschedule events) present.
pub(crate) fn sample_secret() -> String {
    let cancel = Fixture::load(events::CANCEL);
    let header = cancel.text_at("/headers/authorization");
    header.strip_prefix("Bearer ").expect("a bearer token").to_owned()
}

/// Reservation `id`'s record in `status` as of `recorded_at`, at `resource`'s price.
pub(crate) fn record(
    resource: &Resource,
    id: &ReservationId,
    status: ReservationStatus,
    recorded_at: DateTime<Utc>,
) -> ReservationRecord {
    ReservationRecord {
        reservation_id: id.clone(),
        start: id.slot_key().start,
        end: id.slot_key().start + Duration::minutes(resource.first_type().1.into()),
        status,
        amount: resource.first_type().2.amount,
        currency: resource.first_type().2.currency.clone(),
        recorded_at,
        secret_hash: Some(crate::domain::SecretHash::of(&sample_secret())),
        calendars: Vec::new(),
    }
}

/// Reservation `id`'s claim on its slot of `resource`, at the resource's
/// price, for the sample customer, with the sample secret, held under
/// the resource's current settings.
pub(crate) fn claim(
    resource: &Resource,
    id: &ReservationId,
    status: ClaimStatus,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
) -> Claim {
    let slot = id.slot_key();
    let end = slot.start + Duration::minutes(resource.first_type().1.into());
    let terms = resource.booking_types[0].terms(resource.first_type().1);
    let hold = Claim::hold(slot, end, terms, sample_customer(), resource.first_type().2, created_at, created_at);
    Claim {
        reservation_id: id.clone(),
        status,
        expires_at,
        secret_hash: Some(crate::domain::SecretHash::of(&sample_secret())),
        settings_version: Some(resource.settings_version.clone()),
        ..hold
    }
}
