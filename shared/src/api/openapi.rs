//! The OpenAPI 3.1 document of every HTTP route, generated from the
//! handlers' own request and response types (`utoipa`): each handler carries
//! its `#[utoipa::path]` (route, parameters, success bodies), each body type
//! derives `ToSchema` next to its serde attributes, and this module adds what
//! is common to all: the problem responses of each operation ([`PROBLEMS`],
//! grouped by status, with the `type` tokens each status can carry), the
//! security schemes, and the host's admin copies of cancel and reschedule.
//!
//! The local gateway serves it at `GET /openapi.json`; `docs/openapi.json` is
//! the committed copy, which a test keeps equal to [`json`]. The integration
//! tests hold every answer the gateway gives to it ([`documents`]), and
//! Schemathesis fuzzes the gateway against it (`scripts/fuzz-api`).

use super::problem::ProblemKind::{self, *};
use super::{
    admin_bookings, availability, cancel, checkout, put_resource, reschedule, reservation_status, reserve,
    resource_view, stripe_webhook,
};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, HttpMethod, ObjectBuilder, Ref, RefOr, ResponseBuilder, Schema, Type};

/// Problems any route can answer: a body the gateway cannot read in time or
/// that is too large, storage down, a bug.
pub const ANY: &[ProblemKind] = &[RequestTimeout, PayloadTooLarge, InternalError, ServiceUnavailable];

/// Every operation's problems beyond [`ANY`]: `(operationId, kinds)`. The
/// README's API table says the same in words; the integration tests fail an
/// answer whose status or `type` is not listed here for its operation.
pub const PROBLEMS: &[(&str, &[ProblemKind])] = &[
    ("getResource", &[ResourceNotFound]),
    ("listSlots", &[InvalidQuery, InvalidRange, RangeTooLarge, ResourceNotFound, BusyTimeUnavailable]),
    (
        "reserve",
        &[
            InvalidJson,
            MalformedField,
            UnsupportedMediaType,
            InvalidIdempotencyKey,
            SlotTaken,
            DayFull,
            SoldOut,
            HostBusy,
            BusyTimeUnavailable,
            InvalidField,
            UnknownResource,
            UnknownBookingType,
            UnknownDuration,
            OffGrid,
            OutsideOpeningHours,
            SlotInPast,
            TooSoon,
            TooFarAhead,
            IdempotencyKeyReused,
        ],
    ),
    ("getReservation", &[Unauthorized, ReservationNotFound]),
    (
        "checkout",
        &[
            InvalidJson,
            MalformedField,
            UnsupportedMediaType,
            Unauthorized,
            ReservationNotFound,
            NotHeld,
            CheckoutUrlsDiffer,
            SettingsChanged,
            RequestInProgress,
            HoldExpired,
            TooSoon,
            InvalidField,
            PaymentProviderError,
            PaymentProviderUnavailable,
        ],
    ),
    (
        "cancelBooking",
        &[
            Unauthorized,
            Forbidden,
            BookingNotFound,
            NotCancellable,
            OutsideCancellationWindow,
            RequestInProgress,
            PaymentProviderError,
            PaymentProviderUnavailable,
            QueueUnavailable,
        ],
    ),
    (
        "rescheduleBooking",
        &[
            InvalidJson,
            MalformedField,
            UnsupportedMediaType,
            Unauthorized,
            Forbidden,
            BookingNotFound,
            NotReschedulable,
            OutsideRescheduleWindow,
            PriceDiffers,
            SlotTaken,
            HostBusy,
            BusyTimeUnavailable,
            DayFull,
            RequestInProgress,
            InvalidField,
            UnknownDuration,
            UnknownBookingType,
            OffGrid,
            OutsideOpeningHours,
            SlotInPast,
            TooSoon,
            TooFarAhead,
            QueueUnavailable,
        ],
    ),
    (
        "putResource",
        &[
            InvalidJson,
            MalformedField,
            UnsupportedMediaType,
            Unauthorized,
            Forbidden,
            InvalidResourceId,
            InvalidResource,
        ],
    ),
    ("listBookings", &[Unauthorized, Forbidden, InvalidQuery, InvalidRange, ResourceNotFound]),
    (
        "stripeWebhook",
        &[
            InvalidSignature,
            PaymentProviderError,
            PaymentProviderUnavailable,
            QueueUnavailable,
            UnreadableEvent,
            ConcurrentUpdate,
        ],
    ),
];

/// The host's copies of the customer routes: `(operationId, admin path, admin operationId)`.
const ADMIN_COPIES: &[(&str, &str, &str)] = &[
    ("cancelBooking", "/v1/admin/bookings/{id}/cancel", "adminCancelBooking"),
    ("rescheduleBooking", "/v1/admin/bookings/{id}/reschedule", "adminRescheduleBooking"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "slotguard",
        description = "Paid time-slot booking that cannot double-book: hold a slot, pay with Stripe Checkout, \
            confirm by webhook, write the host's calendar. Every error is an RFC 9457 \
            `application/problem+json` body whose `type` is one of the `Problem` schema's tokens; a `Retry-After` \
            header comes with every kind a retry can cure. Unknown paths answer `404 not_found`, a known path \
            with another method `405 method_not_allowed`. Times are RFC 3339; responses use UTC. Integers are \
            JSON numbers without a fraction: `30`, not `30.0` (which JSON Schema also calls an integer; the \
            API answers it with `400 invalid_field`).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        resource_view::resource_view,
        availability::availability,
        reserve::reserve,
        reservation_status::reservation_status,
        checkout::checkout,
        cancel::cancel,
        reschedule::reschedule,
        put_resource::put_resource,
        admin_bookings::admin_bookings,
        stripe_webhook::stripe_webhook,
    ),
    tags(
        (name = "booking", description = "What a booking page and its customer call"),
        (name = "admin", description = "The host's routes: a bearer token locally, IAM (SigV4) on AWS"),
        (name = "stripe", description = "Stripe's webhook"),
    ),
)]
struct Generated;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Generated::openapi();
    add_admin_copies(&mut doc);
    // Checkout's body may be left out (the deployment's return URLs).
    if let Some(body) = doc
        .paths
        .paths
        .get_mut("/v1/reservations/{id}/checkout")
        .and_then(|i| i.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    add_components(&mut doc);
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            add_problems(op);
        }
    }
    doc
}

/// [`document`] with its links, as pretty JSON with a trailing newline: what
/// `/openapi.json` answers and `docs/openapi.json` holds.
pub fn json() -> String {
    let mut doc = serde_json::to_value(document()).expect("the document always serialises");
    add_links(&mut doc);
    close_request_objects(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value always serialises");
    text.push('\n');
    text
}

/// The operations of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Every problem an operation can answer: [`ANY`] and its [`PROBLEMS`] entry.
pub fn problems_of(operation_id: &str) -> Vec<ProblemKind> {
    let own = PROBLEMS.iter().find(|(id, _)| *id == operation_id).map_or(&[][..], |(_, kinds)| kinds);
    let mut kinds: Vec<ProblemKind> = ANY.to_vec();
    kinds.extend(own.iter().filter(|k| !ANY.contains(k)));
    kinds
}

fn add_problems(op: &mut Operation) {
    let id = op.operation_id.clone().unwrap_or_default();
    let kinds = problems_of(&customer_operation(&id));
    let mut statuses: Vec<u16> = kinds.iter().map(|k| k.status().as_u16()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let here: Vec<ProblemKind> = kinds.iter().copied().filter(|k| k.status().as_u16() == status).collect();
        let tokens: Vec<&str> = here.iter().map(|k| k.as_str()).collect();
        let schema = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("type", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(tokens.clone())))
            .property("status", ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([status])))
            .required("type")
            .required("status");
        let body = utoipa::openapi::schema::AllOfBuilder::new().item(Ref::from_schema_name("Problem")).item(schema);
        let mut response = ResponseBuilder::new()
            .description(format!("`{}`", tokens.join("`, `")))
            .content("application/problem+json", Content::new(Some(body)));
        if here.iter().any(|k| k.is_retryable()) {
            response = response.header(
                "Retry-After",
                utoipa::openapi::HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before retrying (the kinds a retry can cure)"))
                    .build(),
            );
        }
        op.responses.responses.insert(status.to_string(), RefOr::T(response.build()));
    }
}

/// The operation whose problems `operation_id` answers: the host's copies
/// (`adminCancelBooking`) answer what the customer operation answers.
fn customer_operation(operation_id: &str) -> String {
    operation_id.strip_prefix("admin").map(lowercase_first).unwrap_or_else(|| operation_id.to_owned())
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// The links a client (and Schemathesis' stateful phase) follows: from a
/// resource to its slots, and from a hold to its status, checkout, cancel
/// and reschedule. (None from the slots to a hold: its body needs a
/// customer, which a document has no business inventing.)
const LINKS: &[(&str, &str, &str, &str)] = &[
    // (path, status, link name, operationId)
    ("/v1/reservations", "201", "getReservation", "getReservation"),
    ("/v1/reservations", "201", "checkout", "checkout"),
    ("/v1/reservations", "201", "cancelBooking", "cancelBooking"),
    ("/v1/reservations", "201", "rescheduleBooking", "rescheduleBooking"),
    ("/v1/resources/{id}", "200", "listSlots", "listSlots"),
];

/// The request bodies' schemas and every schema they use: all of them
/// refuse unknown fields (`#[serde(deny_unknown_fields)]`).
const REQUEST_SCHEMAS: &[&str] = &[
    "ReserveRequest",
    "CustomerRequest",
    "CheckoutBody",
    "RescheduleRequest",
    "ResourceSpec",
    "BookingTypeSpec",
    "DurationSpec",
    "Price",
    "OpeningSpec",
    "WeeklyHoursSpec",
    "DateOverrideSpec",
    "TeamSpec",
    "BusyTimeSpec",
    "CancellationPolicy",
    "ReschedulePolicy",
    "LateCancellation",
    "CalendarTarget",
];

/// Marks every object schema inside [`REQUEST_SCHEMAS`] closed
/// (`additionalProperties: false`), as their serde types are: utoipa 5 does
/// so for structs but not for enum variants (`{"refund": {...}, "x": 1}`
/// would be valid, and serde reads its first key as the variant).
fn close_request_objects(doc: &mut serde_json::Value) {
    fn close(schema: &mut serde_json::Value) {
        match schema {
            serde_json::Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".to_owned(), serde_json::Value::Bool(false));
                }
                map.values_mut().for_each(close);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    for name in REQUEST_SCHEMAS {
        let schema = &mut doc["components"]["schemas"][*name];
        assert!(schema.is_object(), "{name} is a schema of the document");
        close(schema);
    }
}

/// Adds [`LINKS`] to the serialised document: utoipa 5 writes a link's
/// `operationId` as `operation_id`, which no OpenAPI reader knows.
fn add_links(doc: &mut serde_json::Value) {
    use serde_json::json;
    for (path, status, name, target) in LINKS {
        let link = match *target {
            "listSlots" => json!({"operationId": target, "parameters": {
                "id": "$response.body#/resource_id",
                "type": "$response.body#/booking_types/0/id",
            }}),
            _ => json!({"operationId": target, "parameters": {"id": "$response.body#/reservation_id"}}),
        };
        let item = &mut doc["paths"][*path];
        let op = if item.get("get").is_some() { &mut item["get"] } else { &mut item["post"] };
        let response = &mut op["responses"][*status];
        assert!(response.is_object(), "{path} answers {status}");
        response["links"][*name] = link;
    }
}

/// `POST /v1/admin/bookings/{id}/...`: the customer operation, for the host.
fn add_admin_copies(doc: &mut utoipa::openapi::OpenApi) {
    for (customer_id, path, admin_id) in ADMIN_COPIES {
        let found =
            doc.paths.paths.values().find_map(|item| {
                item.post.as_ref().filter(|op| op.operation_id.as_deref() == Some(customer_id)).cloned()
            });
        let mut op = found.expect("every admin copy names an operation of the document");
        op.operation_id = Some((*admin_id).to_owned());
        op.tags = Some(vec!["admin".to_owned()]);
        op.summary = op.summary.map(|s| format!("{s} (the host: always allowed, full refund)"));
        op.security = Some(vec![
            SecurityRequirement::new("adminToken", Vec::<String>::new()),
            SecurityRequirement::new("awsSigV4", Vec::<String>::new()),
        ]);
        doc.paths.add_path_operation(*path, vec![HttpMethod::Post], op);
    }
}

/// The `Problem` schema, the `PUT` answer's schema and the security schemes.
fn add_components(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let tokens: Vec<&str> = {
        let mut t: Vec<&str> = ProblemKind::ALL.iter().map(|k| k.as_str()).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let problem = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An RFC 9457 problem: the body of every 4xx and 5xx answer"))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(tokens))
                .description(Some("Stable token of the kind of problem")),
        )
        .property(
            "title",
            ObjectBuilder::new().schema_type(Type::String).description(Some("A short summary of the kind")),
        )
        .property("status", ObjectBuilder::new().schema_type(Type::Integer).description(Some("The HTTP status")))
        .property(
            "detail",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("What was wrong with this request; for a 5xx only what failed")),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
    components.schemas.insert("Problem".to_owned(), RefOr::T(Schema::Object(problem.build())));

    // The PUT answer is the spec as stored plus its id: the spec's own schema
    // with one more required property.
    let stored = match components.schemas.get("ResourceSpec") {
        Some(RefOr::T(Schema::Object(spec))) => {
            let mut stored = spec.clone();
            stored.properties.insert("id".to_owned(), RefOr::Ref(Ref::from_schema_name("ResourceId")));
            stored.required.insert(0, "id".to_owned());
            stored.description = Some("The resource as stored, with its id".to_owned());
            Schema::Object(stored)
        }
        _ => unreachable!("ResourceSpec is the PUT body, so the document has its schema"),
    };
    components.schemas.insert("StoredResource".to_owned(), RefOr::T(stored));

    let bearer = |description: &str| {
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build())
    };
    components.add_security_scheme(
        "reservationSecret",
        bearer("The reservation's secret (`rsk_…`), answered once by `POST /v1/reservations`"),
    );
    components.add_security_scheme(
        "adminToken",
        bearer("The admin token (`SLOTGUARD_ADMIN_TOKEN`): the local gateway and token-mode deployments"),
    );
    components.add_security_scheme(
        "awsSigV4",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "AWS IAM: a SigV4-signed request (service execute-api), on the admin routes of an AWS deployment",
        ))),
    );
}

/// Whether `document()` lists `status` (and, for a problem, its `type`) for
/// the operation `method path` of the gateway (a path as requested, e.g.
/// `/v1/reservations/rsv_...`): `Err` says what is undocumented.
pub fn documents(method: &str, path: &str, status: u16, problem_type: Option<&str>) -> Result<(), String> {
    let doc = document_cached();
    let found = doc.paths.paths.iter().find(|(template, _)| super::path_params(template, path).is_some());
    let Some((template, item)) = found else {
        return if status == 404 || status == 405 {
            Ok(())
        } else {
            Err(format!("{method} {path}: no such path in the document"))
        };
    };
    let op = match method {
        "GET" => item.get.as_ref(),
        "PUT" => item.put.as_ref(),
        "POST" => item.post.as_ref(),
        _ => None,
    };
    let Some(op) = op else {
        return if status == 405 { Ok(()) } else { Err(format!("{method} {template}: no such operation")) };
    };
    let Some(RefOr::T(_)) = op.responses.responses.get(&status.to_string()) else {
        return Err(format!("{method} {template}: status {status} is not documented"));
    };
    if let Some(kind) = problem_type {
        let id = op.operation_id.as_deref().map(customer_operation).unwrap_or_default();
        let listed = problems_of(&id).iter().any(|k| k.as_str() == kind && k.status().as_u16() == status);
        if !listed {
            return Err(format!("{method} {template}: {status} {kind} is not documented"));
        }
    }
    Ok(())
}

fn document_cached() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_kind_is_answered_by_some_operation() {
        let doc = document();
        let text = serde_json::to_string(&doc).unwrap();
        for kind in ProblemKind::ALL {
            if matches!(kind, NotFound | MethodNotAllowed) {
                continue; // the gateway's, for paths and methods that are no operation
            }
            let listed = PROBLEMS.iter().any(|(_, kinds)| kinds.contains(kind)) || ANY.contains(kind);
            assert!(listed, "{kind:?} is answered by no operation of the document");
            assert!(text.contains(&format!("`{}`", kind.as_str())), "{kind:?}");
        }
    }

    #[test]
    fn every_problems_entry_names_an_operation() {
        let doc = document();
        let ids: Vec<String> = doc
            .paths
            .paths
            .values()
            .cloned()
            .flat_map(|mut item| operations(&mut item).filter_map(|op| op.operation_id.clone()).collect::<Vec<_>>())
            .collect();
        for (id, _) in PROBLEMS {
            assert!(ids.iter().any(|i| i == id), "{id} is not an operation");
        }
        assert_eq!(ids.len(), 12, "{ids:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_its_problem_and_security_components() {
        let doc: serde_json::Value = serde_json::from_str(&json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = &doc["components"]["securitySchemes"];
        for scheme in ["reservationSecret", "adminToken", "awsSigV4"] {
            assert!(schemes[scheme].is_object(), "{scheme}");
        }
        let reserve = &doc["paths"]["/v1/reservations"]["post"];
        assert_eq!(
            reserve["responses"]["409"]["content"]["application/problem+json"]["schema"]["allOf"][0]["$ref"],
            "#/components/schemas/Problem"
        );
        assert!(reserve["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "Idempotency-Key"));
        assert!(reserve["responses"]["503"]["headers"]["Retry-After"].is_object());
        let statuses = &doc["components"]["schemas"]["ReservationStatus"]["enum"];
        for s in ["held", "expired", "payment_pending", "confirmed", "cancelling", "released", "refunded", "cancelled"]
        {
            assert!(statuses.as_array().unwrap().iter().any(|v| v == s), "{s}: {statuses}");
        }
    }

    /// `docs/openapi.json` is [`json`]; `SLOTGUARD_WRITE_OPENAPI=1` rewrites it.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let generated = json();
        if std::env::var_os("SLOTGUARD_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date: run `SLOTGUARD_WRITE_OPENAPI=1 cargo test -p slotguard openapi` and commit it"
        );
    }

    #[test]
    fn documents_knows_paths_statuses_and_types() {
        assert!(documents("POST", "/v1/reservations", 201, None).is_ok());
        assert!(documents("POST", "/v1/reservations", 409, Some("slot_taken")).is_ok());
        assert!(documents("POST", "/v1/reservations", 409, Some("not_held")).is_err());
        assert!(documents("POST", "/v1/reservations", 410, Some("hold_expired")).is_err());
        assert!(documents("GET", "/v1/reservations/rsv_x", 404, Some("reservation_not_found")).is_ok());
        assert!(documents("POST", "/v1/admin/bookings/rsv_x/cancel", 200, None).is_ok());
        assert!(documents("GET", "/nowhere", 404, Some("not_found")).is_ok());
        assert!(documents("GET", "/nowhere", 200, None).is_err());
    }
}
