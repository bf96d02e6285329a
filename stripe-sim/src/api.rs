//! The `/v1` routes: the subset of Stripe's API slotguard calls, with Stripe's
//! authentication, error bodies and idempotency.
//!
//! A whole request, from the idempotency check to saving its result, runs
//! under the state lock. Concurrent requests with one key are therefore
//! serialised: the first executes, the others replay its saved response.

use crate::form;
use crate::objects;
use crate::state::{IdempotencyRecord, Origin, Refund, Session, State, new_id};
use hyper::HeaderMap;
use serde_json::Value;
use std::collections::BTreeMap;

/// Stripe's bounds on a Checkout Session's `expires_at`, from its creation.
const MIN_EXPIRY_SECS: i64 = 30 * 60;
const MAX_EXPIRY_SECS: i64 = 24 * 60 * 60;
/// What a session lives when `expires_at` is not given.
const DEFAULT_EXPIRY_SECS: i64 = MAX_EXPIRY_SECS;

/// A `/v1` response, ready to send.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// A replay of a saved response (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

/// A response and the events it produced, to deliver once the lock is gone.
#[derive(Debug)]
pub struct ApiOutcome {
    pub response: ApiResponse,
    pub deliver: Vec<String>,
    /// The request ran (or failed) as usual, but its answer is to be dropped
    /// with the connection (`POST /_sim/lose_answers`).
    pub lost: bool,
}

/// A Stripe error: HTTP status plus the fields of the `error` object.
#[derive(Debug, Clone)]
struct ApiError {
    status: u16,
    type_: &'static str,
    message: String,
    code: Option<&'static str>,
    param: Option<String>,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> Self {
        Self { status: 400, type_: "invalid_request_error", message: message.into(), code: None, param: None }
    }

    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    fn missing(param: &str) -> Self {
        Self::invalid(format!("Missing required param: {param}.")).code("parameter_missing").param(param)
    }

    fn no_such(kind: &str, id: &str) -> Self {
        Self::invalid(format!("No such {kind}: '{id}'")).code("resource_missing").status(404)
    }

    fn body(&self) -> String {
        objects::error(self.type_, &self.message, self.code, self.param.as_deref()).to_string()
    }
}

/// The secret key of an `Authorization` header: `Bearer <key>`, or HTTP
/// Basic with the key as user name (`curl -u sk_test_...:`), both of which
/// Stripe accepts. Any non-empty key is good.
fn api_key(authorization: Option<&str>) -> Option<String> {
    let authorization = authorization?;
    let key = if let Some(token) = authorization.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else {
        let decoded = base64_decode(authorization.strip_prefix("Basic ")?.trim())?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split(':').next().unwrap_or("").to_owned()
    };
    (!key.is_empty()).then_some(key)
}

/// Standard base64 with optional padding; `None` on anything else.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in input.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

enum Route {
    CreateSession,
    GetSession(String),
    ExpireSession(String),
    CreateRefund,
    ListRefunds,
    GetRefund(String),
    ListEvents,
    GetEvent(String),
}

fn route(method: &str, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    Some(match (method, segments.as_slice()) {
        ("POST", ["", "v1", "checkout", "sessions"]) => Route::CreateSession,
        ("GET", ["", "v1", "checkout", "sessions", id]) => Route::GetSession((*id).into()),
        ("POST", ["", "v1", "checkout", "sessions", id, "expire"]) => Route::ExpireSession((*id).into()),
        ("POST", ["", "v1", "refunds"]) => Route::CreateRefund,
        ("GET", ["", "v1", "refunds"]) => Route::ListRefunds,
        ("GET", ["", "v1", "refunds", id]) => Route::GetRefund((*id).into()),
        ("GET", ["", "v1", "events"]) => Route::ListEvents,
        ("GET", ["", "v1", "events", id]) => Route::GetEvent((*id).into()),
        _ => return None,
    })
}

/// What executing a request produced.
struct Executed {
    status: u16,
    body: Value,
    /// The session a create made, to count replays of its key on it.
    created_session: Option<String>,
    deliver: Vec<String>,
}

impl Executed {
    fn ok(body: Value) -> Self {
        Self { status: 200, body, created_session: None, deliver: Vec::new() }
    }
}

/// Context of the request being executed.
struct Ctx<'a> {
    request_id: &'a str,
    idempotency_key: Option<&'a str>,
}

/// Serves one `/v1` request.
pub fn handle(
    state: &std::sync::Mutex<State>,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiOutcome {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let mut outcome = respond(&mut st, method, path, query, headers, body);
    // Taken under the lock the request ran under, so "the next N" POSTs are
    // the next N to run, whatever they answer (an error, a replay or an
    // injected failure is lost the same way).
    outcome.lost = method == "POST" && st.take_lost_answer();
    outcome
}

fn respond(
    st: &mut State,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiOutcome {
    let request_id = new_id("req_", 14);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Stripe ignores the header on GET and DELETE, which are idempotent anyway.
    let idempotency_key = (method == "POST").then(|| header("idempotency-key")).flatten().map(str::to_owned);
    let fail = |err: ApiError| ApiOutcome {
        response: ApiResponse {
            status: err.status,
            body: err.body(),
            request_id: request_id.clone(),
            idempotency_key: idempotency_key.clone(),
            replayed: false,
        },
        deliver: Vec::new(),
        lost: false,
    };

    // An injected outage answers before anything runs, so nothing is saved.
    if let Some(status) = st.take_failure() {
        return fail(ApiError {
            status,
            type_: "api_error",
            message: format!(
                "Simulated Stripe outage: this request was answered {status} without running \
                 (injected with /_sim/fail)."
            ),
            code: None,
            param: None,
        });
    }

    if api_key(header("authorization")).is_none() {
        return fail(
            ApiError::invalid(
                "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY').",
            )
            .status(401),
        );
    }

    let Some(route) = route(method, path) else {
        return fail(
            ApiError::invalid(format!(
                "Unrecognized request URL ({method}: {path}). The Stripe simulator serves only \
                 the routes slotguard uses."
            ))
            .status(404),
        );
    };

    let raw = if method == "POST" { body } else { query.unwrap_or("").as_bytes() };
    let params = match form::parse(raw) {
        Ok(params) => params,
        Err(e) => return fail(ApiError::invalid(e.0)),
    };

    if let Some(key) = &idempotency_key {
        if key.is_empty() || key.len() > 255 {
            return fail(
                ApiError::invalid("Idempotency keys must be 1 to 255 characters long.").param("Idempotency-Key"),
            );
        }
        // A key older than the ttl is forgotten here, so the request below
        // runs afresh, as if the key had never been seen.
        if let Some(saved) = st.idempotency_record(key) {
            if saved.method != method || saved.path != path || saved.params != params {
                return fail(ApiError {
                    status: 400,
                    type_: "idempotency_error",
                    message: format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                    code: None,
                    param: None,
                });
            }
            let saved = saved.clone();
            if let Some(session) = saved.session_id.as_ref().and_then(|id| st.sessions.get_mut(id)) {
                session.create_responses += 1;
            }
            return ApiOutcome {
                response: ApiResponse {
                    status: saved.status,
                    body: saved.body,
                    request_id: saved.request_id,
                    idempotency_key: Some(key.clone()),
                    replayed: true,
                },
                deliver: Vec::new(),
                lost: false,
            };
        }
    }

    let ctx = Ctx { request_id: &request_id, idempotency_key: idempotency_key.as_deref() };
    let executed = match execute(st, route, &params, &ctx) {
        Ok(executed) => executed,
        // Like Stripe, a request that fails validation saves nothing: the
        // client may fix it and retry with the same key.
        Err(err) => return fail(err),
    };
    let response = ApiResponse {
        status: executed.status,
        body: executed.body.to_string(),
        request_id: request_id.clone(),
        idempotency_key: idempotency_key.clone(),
        replayed: false,
    };
    if let Some(key) = idempotency_key {
        let created = st.now();
        st.idempotency.insert(
            key,
            IdempotencyRecord {
                method: method.to_owned(),
                path: path.to_owned(),
                params,
                status: response.status,
                body: response.body.clone(),
                request_id: request_id.clone(),
                session_id: executed.created_session,
                created,
            },
        );
    }
    ApiOutcome { response, deliver: executed.deliver, lost: false }
}

fn execute(st: &mut State, route: Route, params: &Value, ctx: &Ctx) -> Result<Executed, ApiError> {
    match route {
        Route::CreateSession => create_session(st, params, ctx),
        Route::GetSession(id) => {
            only_params(params, &[])?;
            st.session_json(&id).map(Executed::ok).ok_or_else(|| ApiError::no_such("checkout.session", &id))
        }
        Route::ExpireSession(id) => {
            only_params(params, &[])?;
            let session = st.sessions.get(&id).ok_or_else(|| ApiError::no_such("checkout.session", &id))?;
            if session.status != "open" {
                return Err(ApiError::invalid(format!(
                    "Only Checkout Sessions with a status in [\"open\"] can be expired. This \
                     Checkout Session has a status of \"{}\".",
                    session.status
                )));
            }
            let origin = Origin {
                request_id: Some(ctx.request_id.to_owned()),
                idempotency_key: ctx.idempotency_key.map(str::to_owned),
            };
            let event = st.expire(&id, origin).map_err(|e| ApiError::invalid(e.message))?;
            let body = st.session_json(&id).expect("the session exists");
            Ok(Executed { deliver: vec![event], ..Executed::ok(body) })
        }
        Route::CreateRefund => create_refund(st, params, ctx),
        Route::ListRefunds => list_refunds(st, params),
        Route::GetRefund(id) => {
            only_params(params, &[])?;
            st.refunds
                .iter()
                .find(|r| r.id == id)
                .map(|r| Executed::ok(objects::refund(r)))
                .ok_or_else(|| ApiError::no_such("refund", &id))
        }
        Route::ListEvents => list_events(st, params),
        Route::GetEvent(id) => {
            only_params(params, &[])?;
            let event = st.event(&id).ok_or_else(|| ApiError::no_such("event", &id))?;
            let body = serde_json::from_str(&event.body).expect("events are valid JSON");
            Ok(Executed::ok(body))
        }
    }
}

/// Rejects parameters the simulator does not model. Stripe rejects unknown
/// parameters too; here a real Stripe parameter can land in this error, and
/// failing loudly beats silently ignoring something that changes behaviour.
fn only_params(params: &Value, allowed: &[&str]) -> Result<(), ApiError> {
    only_keys(params, allowed, "")
}

fn only_keys(params: &Value, allowed: &[&str], prefix: &str) -> Result<(), ApiError> {
    let Some(map) = params.as_object() else {
        return Ok(());
    };
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}[{key}]") };
            let hint = if key == "expand" {
                " (the simulator does not expand objects)"
            } else {
                " (the Stripe simulator does not model this parameter)"
            };
            return Err(ApiError::invalid(format!("Received unknown parameter: {name}{hint}"))
                .code("parameter_unknown")
                .param(name));
        }
    }
    Ok(())
}

fn string_param(params: &Value, key: &str, name: &str) -> Result<Option<String>, ApiError> {
    match params.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(format!("Invalid string: {name} must be a string")).param(name)),
    }
}

fn int_param(params: &Value, key: &str, name: &str) -> Result<Option<i64>, ApiError> {
    match string_param(params, key, name)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!("Invalid integer: {s}")).code("parameter_invalid_integer").param(name)
        }),
    }
}

fn metadata_param(params: &Value, key: &str, name: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    let Some(value) = params.get(key) else {
        return Ok(out);
    };
    let Some(map) = value.as_object() else {
        return Err(ApiError::invalid(format!("Invalid object: {name} must be a hash of key-value pairs")).param(name));
    };
    if map.len() > 50 {
        return Err(ApiError::invalid("Metadata can have up to 50 keys.").param(name));
    }
    for (k, v) in map {
        let Value::String(v) = v else {
            return Err(ApiError::invalid(format!("Invalid value for {name}[{k}]: metadata values must be strings"))
                .param(format!("{name}[{k}]")));
        };
        if k.chars().count() > 40 {
            return Err(ApiError::invalid(format!("Metadata keys can have up to 40 characters; '{k}' is longer."))
                .param(format!("{name}[{k}]")));
        }
        if v.chars().count() > 500 {
            return Err(ApiError::invalid(format!(
                "Metadata values can have up to 500 characters; {name}[{k}] is longer."
            ))
            .param(format!("{name}[{k}]")));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

fn url_param(params: &Value, key: &str) -> Result<Option<String>, ApiError> {
    let url = string_param(params, key, key)?;
    if let Some(url) = &url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ApiError::invalid("Not a valid URL").code("url_invalid").param(key));
    }
    Ok(url)
}

fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_lowercase())
}

fn create_session(st: &mut State, params: &Value, ctx: &Ctx) -> Result<Executed, ApiError> {
    only_params(
        params,
        &[
            "mode",
            "line_items",
            "client_reference_id",
            "customer_email",
            "metadata",
            "expires_at",
            "success_url",
            "cancel_url",
            "payment_intent_data",
            "currency",
            "locale",
            "payment_method_types",
        ],
    )?;
    let now = st.now();
    match string_param(params, "mode", "mode")?.as_deref() {
        None | Some("payment") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!("The Stripe simulator supports only mode=payment, not {other}."))
                .param("mode"));
        }
    }

    let items = match params.get("line_items") {
        None => return Err(ApiError::missing("line_items")),
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 100 => items,
        Some(_) => {
            return Err(
                ApiError::invalid("Invalid array: line_items must be a list of 1 to 100 items").param("line_items")
            );
        }
    };
    let mut line_items = Vec::new();
    let mut currency: Option<String> = None;
    for (i, item) in items.iter().enumerate() {
        let at = format!("line_items[{i}]");
        only_keys(item, &["price_data", "quantity"], &at)?;
        let Some(price) = item.get("price_data") else {
            return Err(ApiError::invalid(format!(
                "You must specify {at}[price_data]: the Stripe simulator has no Price objects."
            ))
            .code("parameter_missing")
            .param(format!("{at}[price_data]")));
        };
        let at_price = format!("{at}[price_data]");
        only_keys(price, &["currency", "unit_amount", "product_data"], &at_price)?;
        let item_currency = string_param(price, "currency", &format!("{at_price}[currency]"))?
            .ok_or_else(|| ApiError::missing(&format!("{at_price}[currency]")))?;
        if !is_currency(&item_currency) {
            return Err(
                ApiError::invalid(format!("Invalid currency: {item_currency}")).param(format!("{at_price}[currency]"))
            );
        }
        if let Some(first) = &currency
            && *first != item_currency
        {
            return Err(ApiError::invalid("All line items in a Checkout Session must use the same currency.")
                .param(format!("{at_price}[currency]")));
        }
        currency = Some(item_currency);
        let unit_amount = int_param(price, "unit_amount", &format!("{at_price}[unit_amount]"))?
            .ok_or_else(|| ApiError::missing(&format!("{at_price}[unit_amount]")))?;
        if !(0..=99_999_999).contains(&unit_amount) {
            return Err(ApiError::invalid("unit_amount must be between 0 and 99999999.")
                .param(format!("{at_price}[unit_amount]")));
        }
        let product = price.get("product_data").ok_or_else(|| {
            ApiError::invalid(format!(
                "You must specify {at_price}[product_data]: the Stripe simulator has no Product \
                 objects."
            ))
            .code("parameter_missing")
            .param(format!("{at_price}[product_data]"))
        })?;
        let at_product = format!("{at_price}[product_data]");
        only_keys(product, &["name", "description"], &at_product)?;
        let name = string_param(product, "name", &format!("{at_product}[name]"))?
            .ok_or_else(|| ApiError::missing(&format!("{at_product}[name]")))?;
        let quantity = int_param(item, "quantity", &format!("{at}[quantity]"))?.ok_or_else(|| {
            ApiError::invalid(format!("Quantity is required. Add `quantity` to `{at}`."))
                .code("parameter_missing")
                .param(format!("{at}[quantity]"))
        })?;
        if !(1..=999_999).contains(&quantity) {
            return Err(ApiError::invalid("Quantity must be between 1 and 999999.").param(format!("{at}[quantity]")));
        }
        line_items.push(crate::state::LineItem { name, unit_amount, quantity });
    }
    let currency = currency.expect("at least one line item");
    if let Some(top) = string_param(params, "currency", "currency")?
        && top != currency
    {
        return Err(ApiError::invalid(format!("currency {top} does not match the line items' currency {currency}."))
            .param("currency"));
    }
    let amount_total: i64 = line_items.iter().map(|l| l.unit_amount * l.quantity).sum();
    if amount_total > 99_999_999 {
        return Err(ApiError::invalid("The total amount is too large.").code("amount_too_large"));
    }

    let expires_at = match int_param(params, "expires_at", "expires_at")? {
        None => now + DEFAULT_EXPIRY_SECS,
        Some(t) if t < now + MIN_EXPIRY_SECS => {
            return Err(ApiError::invalid(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session \
                 creation.",
            )
            .param("expires_at"));
        }
        Some(t) if t > now + MAX_EXPIRY_SECS => {
            return Err(ApiError::invalid(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session \
                 creation.",
            )
            .param("expires_at"));
        }
        Some(t) => t,
    };

    let client_reference_id = string_param(params, "client_reference_id", "client_reference_id")?;
    if client_reference_id.as_ref().is_some_and(|c| c.len() > 200) {
        return Err(
            ApiError::invalid("client_reference_id can have up to 200 characters.").param("client_reference_id")
        );
    }
    let customer_email = string_param(params, "customer_email", "customer_email")?;
    if let Some(email) = &customer_email
        && (!email.contains('@') || email.contains(char::is_whitespace))
    {
        return Err(ApiError::invalid(format!("Invalid email address: {email}"))
            .code("email_invalid")
            .param("customer_email"));
    }
    let metadata = metadata_param(params, "metadata", "metadata")?;
    let success_url = url_param(params, "success_url")?;
    let cancel_url = url_param(params, "cancel_url")?;
    let locale = string_param(params, "locale", "locale")?;
    let payment_method_types = match params.get("payment_method_types") {
        None => vec!["card".to_owned()],
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid("Invalid array: payment_method_types").param("payment_method_types"))?,
        Some(_) => {
            return Err(ApiError::invalid("Invalid array: payment_method_types").param("payment_method_types"));
        }
    };
    let payment_intent_metadata = match params.get("payment_intent_data") {
        None => BTreeMap::new(),
        Some(data) => {
            only_keys(data, &["metadata", "description"], "payment_intent_data")?;
            metadata_param(data, "metadata", "payment_intent_data[metadata]")?
        }
    };

    let session = Session {
        id: new_id("cs_test_", 58),
        created: now,
        expires_at,
        status: "open",
        payment_status: "unpaid",
        async_pending: false,
        payment_intent: None,
        currency,
        amount_total,
        line_items,
        metadata,
        client_reference_id,
        customer_email,
        success_url,
        cancel_url,
        locale,
        payment_method_types,
        payment_intent_metadata,
        idempotency_key: ctx.idempotency_key.map(str::to_owned),
        create_responses: 1,
    };
    let id = session.id.clone();
    st.insert_session(session);
    Ok(Executed { created_session: Some(id.clone()), ..Executed::ok(st.session_json(&id).expect("just inserted")) })
}

fn create_refund(st: &mut State, params: &Value, ctx: &Ctx) -> Result<Executed, ApiError> {
    if params.get("charge").is_some() {
        return Err(ApiError::invalid("The Stripe simulator refunds by payment_intent only; charge is not supported.")
            .param("charge"));
    }
    only_params(params, &["payment_intent", "amount", "reason", "metadata"])?;
    let pi_id = string_param(params, "payment_intent", "payment_intent")?.ok_or_else(|| {
        ApiError::invalid(
            "One of the following params should be provided for this request: payment_intent or \
             charge.",
        )
        .code("parameter_missing")
    })?;
    let amount = int_param(params, "amount", "amount")?;
    let reason = string_param(params, "reason", "reason")?;
    if let Some(reason) = &reason
        && !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason.as_str())
    {
        return Err(ApiError::invalid(format!(
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer \
             (got {reason})"
        ))
        .param("reason"));
    }
    let metadata = metadata_param(params, "metadata", "metadata")?;
    let created = st.now();
    let intent = st.payment_intents.get_mut(&pi_id).ok_or_else(|| {
        ApiError::invalid(format!("No such payment_intent: '{pi_id}'")).code("resource_missing").param("payment_intent")
    })?;
    if intent.status != "succeeded" {
        return Err(ApiError::invalid(format!(
            "This PaymentIntent ({pi_id}) does not have a successful charge to refund."
        ))
        .code("payment_intent_unexpected_state")
        .param("payment_intent"));
    }
    let remaining = intent.amount - intent.amount_refunded;
    if remaining == 0 {
        return Err(ApiError::invalid(format!("Charge {} has already been refunded.", intent.charge))
            .code("charge_already_refunded"));
    }
    let amount = amount.unwrap_or(remaining);
    if amount < 1 {
        return Err(ApiError::invalid("This value must be greater than or equal to 1.")
            .code("parameter_invalid_integer")
            .param("amount"));
    }
    if amount > remaining {
        return Err(ApiError::invalid(format!(
            "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"
        ))
        .code("amount_too_large")
        .param("amount"));
    }
    intent.amount_refunded += amount;
    let refund = Refund {
        id: new_id("re_", 24),
        payment_intent: pi_id,
        charge: intent.charge.clone(),
        amount,
        currency: intent.currency.clone(),
        reason,
        metadata,
        created,
        idempotency_key: ctx.idempotency_key.map(str::to_owned),
    };
    let body = objects::refund(&refund);
    st.refunds.push(refund);
    Ok(Executed::ok(body))
}

fn list_refunds(st: &mut State, params: &Value) -> Result<Executed, ApiError> {
    only_params(params, &["payment_intent", "limit", "starting_after", "ending_before"])?;
    let pi = string_param(params, "payment_intent", "payment_intent")?;
    // Newest first, as Stripe lists.
    let all: Vec<&Refund> = st.refunds.iter().rev().collect();
    let (page, has_more) =
        paginate(&all, |r| &r.id, |r| pi.as_ref().is_none_or(|pi| r.payment_intent == *pi), params, "refund")?;
    let data = page.into_iter().map(objects::refund).collect();
    Ok(Executed::ok(objects::list(data, has_more, "/v1/refunds")))
}

/// Stripe's `types` takes at most this many event types.
const MAX_EVENT_TYPES: usize = 20;

/// `GET /v1/events`. Each element is the event's stored body, the JSON its
/// deliveries post, so a consumer reconciling from the list can hand it to
/// the same parser as a webhook.
fn list_events(st: &mut State, params: &Value) -> Result<Executed, ApiError> {
    only_params(params, &["limit", "starting_after", "ending_before", "type", "types", "created"])?;
    let type_ = string_param(params, "type", "type")?;
    let bad_types = || ApiError::invalid("Invalid array: types must be a list of strings").param("types");
    let types = match params.get("types") {
        None => None,
        Some(Value::Array(items)) => {
            let strings: Option<Vec<String>> = items.iter().map(|t| t.as_str().map(str::to_owned)).collect();
            Some(strings.ok_or_else(bad_types)?)
        }
        Some(_) => return Err(bad_types()),
    };
    if type_.is_some() && types.is_some() {
        return Err(ApiError::invalid("You may pass either `type` or `types`, but not both.").param("types"));
    }
    if types.as_ref().is_some_and(|t| t.len() > MAX_EVENT_TYPES) {
        return Err(
            ApiError::invalid(format!("types may contain at most {MAX_EVENT_TYPES} event types.")).param("types")
        );
    }
    let created = created_param(params)?;
    let keep = |e: &crate::state::Event| {
        type_.as_ref().is_none_or(|t| type_matches(t, e.type_))
            && types.as_ref().is_none_or(|ts| ts.iter().any(|t| t == e.type_))
            && created.contains(e.created)
    };
    // Newest first, as Stripe lists.
    let all: Vec<&crate::state::Event> = st.events.iter().rev().collect();
    let (page, has_more) = paginate(&all, |e| &e.id, keep, params, "event")?;
    let data = page.into_iter().map(|e| serde_json::from_str(&e.body).expect("events are valid JSON")).collect();
    Ok(Executed::ok(objects::list(data, has_more, "/v1/events")))
}

/// Whether event type `type_` matches `pattern`, where each `*` stands for
/// any run of characters (`checkout.session.*`), as Stripe's `type` filter.
fn type_matches(pattern: &str, type_: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = type_.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: an exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// A `created` filter: an exact timestamp, or any of `gt`, `gte`, `lt`, `lte`.
#[derive(Debug, Clone, Copy)]
struct CreatedRange {
    min: i64,
    max: i64,
}

impl CreatedRange {
    fn contains(&self, t: i64) -> bool {
        (self.min..=self.max).contains(&t)
    }
}

fn created_param(params: &Value) -> Result<CreatedRange, ApiError> {
    let mut range = CreatedRange { min: i64::MIN, max: i64::MAX };
    match params.get("created") {
        None => {}
        Some(Value::String(_)) => {
            let t = int_param(params, "created", "created")?.expect("present");
            range = CreatedRange { min: t, max: t };
        }
        Some(bounds @ Value::Object(_)) => {
            only_keys(bounds, &["gt", "gte", "lt", "lte"], "created")?;
            for op in ["gt", "gte", "lt", "lte"] {
                let Some(t) = int_param(bounds, op, &format!("created[{op}]"))? else {
                    continue;
                };
                match op {
                    "gt" => range.min = range.min.max(t.saturating_add(1)),
                    "gte" => range.min = range.min.max(t),
                    "lt" => range.max = range.max.min(t.saturating_sub(1)),
                    _ => range.max = range.max.min(t),
                }
            }
        }
        Some(_) => {
            return Err(
                ApiError::invalid("Invalid created: must be an integer or a hash of gt, gte, lt, lte").param("created")
            );
        }
    }
    Ok(range)
}

/// One page of a newest-first list by Stripe's rules: `limit` (1 to 100,
/// default 10) items, after the `starting_after` object or, with
/// `ending_before`, the `limit` items just before (newer than) that object,
/// still newest first; `has_more` says whether more lie beyond the page in
/// the direction of travel. The cursor is found among `all`, not only the
/// items `keep` lets through: Stripe takes any existing object as a cursor,
/// and answers 400 `resource_missing` for an unknown one.
fn paginate<'a, T>(
    all: &[&'a T],
    id: impl Fn(&T) -> &str,
    keep: impl Fn(&T) -> bool,
    params: &Value,
    kind: &str,
) -> Result<(Vec<&'a T>, bool), ApiError> {
    let limit = int_param(params, "limit", "limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 100.").param("limit"));
    }
    let limit = limit as usize;
    let after = string_param(params, "starting_after", "starting_after")?;
    let before = string_param(params, "ending_before", "ending_before")?;
    let position = |cursor: &str, name: &str| {
        all.iter().position(|x| id(x) == cursor).ok_or_else(|| ApiError::no_such(kind, cursor).status(400).param(name))
    };
    let kept = |items: &[&'a T]| items.iter().copied().filter(|x| keep(x)).collect::<Vec<_>>();
    match (after, before) {
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("You may only specify one of these parameters: ending_before, starting_after."))
        }
        (None, Some(before)) => {
            let mut page = kept(&all[..position(&before, "ending_before")?]);
            let has_more = page.len() > limit;
            let newer = page.len().saturating_sub(limit);
            Ok((page.split_off(newer), has_more))
        }
        (after, None) => {
            let start = match after {
                Some(after) => position(&after, "starting_after")? + 1,
                None => 0,
            };
            let mut page = kept(&all[start..]);
            let has_more = page.len() > limit;
            page.truncate(limit);
            Ok((page, has_more))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_come_from_bearer_or_basic_auth() {
        assert_eq!(api_key(Some("Bearer sk_test_1")).as_deref(), Some("sk_test_1"));
        // base64("sk_test_1:"), as `curl -u sk_test_1:` sends it.
        assert_eq!(api_key(Some("Basic c2tfdGVzdF8xOg==")).as_deref(), Some("sk_test_1"));
        assert_eq!(api_key(Some("Bearer ")), None);
        // base64(":secret"): no user name, so no key.
        assert_eq!(api_key(Some("Basic OnNlY3JldA==")), None);
        assert_eq!(api_key(Some("Basic not*base64")), None);
        assert_eq!(api_key(Some("Token sk_test_1")), None);
        assert_eq!(api_key(None), None);
    }

    #[test]
    fn event_types_match_exactly_or_by_wildcard() {
        assert!(type_matches("checkout.session.completed", "checkout.session.completed"));
        assert!(!type_matches("checkout.session.complete", "checkout.session.completed"));
        assert!(type_matches("checkout.session.*", "checkout.session.async_payment_failed"));
        assert!(!type_matches("checkout.session.*", "charge.refunded"));
        assert!(type_matches("*", "charge.refunded"));
        assert!(type_matches("*.completed", "checkout.session.completed"));
        assert!(type_matches("checkout.*.expired", "checkout.session.expired"));
        assert!(!type_matches("checkout.*.expired", "checkout.session.completed"));
        // The prefix and the suffix must not overlap.
        assert!(!type_matches("ab*ba", "aba"));
    }

    #[test]
    fn created_is_an_instant_or_a_range() {
        let range = |q: &str| created_param(&form::parse(q.as_bytes()).unwrap());
        let exact = range("created=100").unwrap();
        assert!(exact.contains(100) && !exact.contains(99) && !exact.contains(101));
        let open = range("created[gt]=100&created[lte]=200").unwrap();
        assert!(!open.contains(100) && open.contains(101) && open.contains(200) && !open.contains(201));
        let closed = range("created[gte]=100&created[lt]=200").unwrap();
        assert!(closed.contains(100) && closed.contains(199) && !closed.contains(200));
        assert!(range("").unwrap().contains(i64::MIN));
        assert_eq!(range("created[after]=1").unwrap_err().code, Some("parameter_unknown"));
        assert_eq!(range("created[gte]=soon").unwrap_err().code, Some("parameter_invalid_integer"));
    }
}
