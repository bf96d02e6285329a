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
    };

    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());

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
        if let Some(saved) = st.idempotency.get(key) {
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
            };
        }
    }

    let ctx = Ctx { request_id: &request_id, idempotency_key: idempotency_key.as_deref() };
    let executed = match execute(&mut st, route, &params, &ctx) {
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
            },
        );
    }
    ApiOutcome { response, deliver: executed.deliver }
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
    let limit = int_param(params, "limit", "limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 100.").param("limit"));
    }
    // Newest first, as Stripe lists.
    let mut all: Vec<&Refund> =
        st.refunds.iter().rev().filter(|r| pi.as_ref().is_none_or(|pi| r.payment_intent == *pi)).collect();
    let position = |id: &str, name: &str| {
        all.iter().position(|r| r.id == id).ok_or_else(|| ApiError::no_such("refund", id).status(400).param(name))
    };
    let limit = limit as usize;
    let (page, has_more) = if let Some(after) = string_param(params, "starting_after", "starting_after")? {
        let start = position(&after, "starting_after")? + 1;
        all.drain(..start);
        let has_more = all.len() > limit;
        all.truncate(limit);
        (all, has_more)
    } else if let Some(before) = string_param(params, "ending_before", "ending_before")? {
        let end = position(&before, "ending_before")?;
        all.truncate(end);
        let has_more = all.len() > limit;
        let skip = all.len().saturating_sub(limit);
        (all.split_off(skip), has_more)
    } else {
        let has_more = all.len() > limit;
        all.truncate(limit);
        (all, has_more)
    };
    let data = page.into_iter().map(objects::refund).collect();
    Ok(Executed::ok(objects::list(data, has_more, "/v1/refunds")))
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
}
