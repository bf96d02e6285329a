//! The booking page (`web/`), served by the local gateway:
//!
//! - `GET /book/{resource_id}`: `web/book.html` with the resource id filled
//!   into its `data-resource` attribute;
//! - `GET /book/book.js`, `GET /book/book.css`: the page's script and style
//!   (the page links them relatively, so the same files work when a host
//!   copies `web/` onto any site).
//!
//! The files are compiled in (`include_str!`). The id is checked as
//! `ResourceId::parse` checks it (a-z, 0-9, '-') and HTML-escaped anyway; a
//! malformed id is `400 invalid_resource_id`. A well-formed id is not looked
//! up: an unknown resource gets the page, which asks the API and shows its
//! `404 resource_not_found`, as it would on any other site. Another method is
//! `405`. The answers carry a Content-Security-Policy that allows only the
//! page's own script, style and API calls (same origin), plus `blob:` reads
//! of the `.ics` file the page makes, and no framing.
//!
//! These routes are not API routes: they are not in [`crate::gateway::ROUTES`]
//! (which mirrors `template.yaml`) and not deployed; on AWS a host serves
//! `web/` from its own site.

use lambda_http::Body;
use lambda_http::http::{Method, StatusCode, header};
use slotguard::api::{Problem, ProblemKind};
use slotguard::domain::ResourceId;

/// Where the page lives: `/book/{resource_id}`.
pub const PREFIX: &str = "/book/";

const HTML: &str = include_str!("../../web/book.html");
const SCRIPT: &str = include_str!("../../web/book.js");
const STYLE: &str = include_str!("../../web/book.css");

/// The placeholder in `web/book.html` that the resource id replaces.
const PLACEHOLDER: &str = "{{resource}}";

/// Only this origin's script, style and API; the `.ics` Blob may be read
/// back (`connect-src blob:`); no plugins, frames, forms posting elsewhere
/// or `<base>` tricks.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self' blob:; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Answers a request for the booking page or its files, or `None` when
/// `path` is not under [`PREFIX`] (the API routes answer it).
pub fn answer(method: &Method, path: &str) -> Option<lambda_http::Response<Body>> {
    let name = path.strip_prefix(PREFIX)?;
    if method != Method::GET && method != Method::HEAD {
        let detail = format!("{PREFIX}… serves GET only");
        let mut response = Problem::new(ProblemKind::MethodNotAllowed, detail).into_response();
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Some(response);
    }
    let (content_type, body) = match name {
        "book.js" => ("text/javascript; charset=utf-8", SCRIPT.to_owned()),
        "book.css" => ("text/css; charset=utf-8", STYLE.to_owned()),
        id => match ResourceId::parse(id) {
            Ok(id) => ("text/html; charset=utf-8", page(&id)),
            Err(_) => {
                let detail = "a booking page address is /book/{resource_id}: 1-64 characters of a-z, 0-9 and '-'";
                return Some(Problem::new(ProblemKind::InvalidResourceId, detail).into_response());
            }
        },
    };
    let body = if method == Method::HEAD { Body::Empty } else { Body::Text(body) };
    let response = lambda_http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("static headers are valid");
    Some(response)
}

/// `web/book.html` for `id`.
fn page(id: &ResourceId) -> String {
    HTML.replace(PLACEHOLDER, &escape_html(id.as_str()))
}

/// Escapes text for an HTML attribute value in double quotes (or element text).
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> lambda_http::Response<Body> {
        answer(&Method::GET, path).expect("a /book/ path")
    }

    fn text(r: &lambda_http::Response<Body>) -> String {
        String::from_utf8(r.body().as_ref().to_vec()).unwrap()
    }

    fn header(r: &lambda_http::Response<Body>, name: header::HeaderName) -> &str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn the_page_names_its_resource_with_a_strict_policy() {
        let r = get("/book/demo");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let csp = header(&r, header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self';") && csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        let html = text(&r);
        assert!(html.contains(r#"data-resource="demo""#), "{html}");
        assert!(!html.contains(PLACEHOLDER));
        assert!(html.contains(r#"<script src="book.js" defer></script>"#));
        // The policy allows no inline script: the page has none.
        assert!(!html.contains("<script>"), "inline script in the page");
        let handler = html.split(" on").skip(1).any(|rest| {
            let event = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
            event > 0 && rest[event..].starts_with('=')
        });
        assert!(!handler, "inline event handler in the page");
    }

    #[test]
    fn script_and_style_are_served_with_their_types() {
        let js = get("/book/book.js");
        assert_eq!(header(&js, header::CONTENT_TYPE), "text/javascript; charset=utf-8");
        assert_eq!(text(&js), SCRIPT);
        let css = get("/book/book.css");
        assert_eq!(header(&css, header::CONTENT_TYPE), "text/css; charset=utf-8");
        assert_eq!(header(&css, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }

    #[test]
    fn a_malformed_id_is_a_problem_and_never_reaches_the_page() {
        for path in ["/book/%22%3E%3Cscript%3E", "/book/\"><script>", "/book/Demo", "/book/", "/book/a/b", "/book/-x"] {
            let r = get(path);
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(header(&r, header::CONTENT_TYPE), "application/problem+json", "{path}");
            assert!(text(&r).contains("invalid_resource_id"), "{path}");
            assert!(!text(&r).contains("<script>"), "{path}");
        }
    }

    #[test]
    fn an_unknown_but_well_formed_id_gets_the_page() {
        let r = get("/book/no-such-resource");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(text(&r).contains(r#"data-resource="no-such-resource""#));
    }

    #[test]
    fn other_methods_and_paths() {
        let r = answer(&Method::POST, "/book/demo").unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        let head = answer(&Method::HEAD, "/book/demo").unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().as_ref().is_empty());
        assert!(answer(&Method::GET, "/v1/resources/demo").is_none());
        assert!(answer(&Method::GET, "/book").is_none());
        assert!(answer(&Method::GET, "/booking/demo").is_none());
    }

    /// Through the gateway, over a socket: the page answers before the API
    /// routes look at the path, and touches nothing of the API (its
    /// endpoints point nowhere).
    #[tokio::test]
    async fn the_gateway_serves_the_page_over_a_socket() {
        use crate::gateway::{Gateway, serve};
        use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
        use slotguard::adapters::{calendars::CalendarTargetRules, dynamo::DynamoStore, sqs::SqsCalendarQueue};
        use slotguard::api::{auth::AdminAuth, checkout::CheckoutUrls};
        let nowhere = "http://127.0.0.1:9";
        let gateway = Gateway {
            store: DynamoStore::new(crate::dev::dynamodb_client(nowhere), "unused"),
            admin: AdminAuth::Token("unused".into()),
            calendar_rules: CalendarTargetRules::local(),
            payments: std::sync::Arc::new(StripePayments::new("sk_test_unused", Some(nowhere)).unwrap()),
            checkout_urls: CheckoutUrls {
                success_url: "https://shop.example/ok".into(),
                cancel_url: "https://shop.example/no".into(),
            },
            calendar: SqsCalendarQueue::new(crate::dev::sqs_client(nowhere), format!("{nowhere}/queue")),
            verifier: WebhookVerifier::new("whsec_unused"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, gateway, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let page = client.get(format!("{base}/book/demo")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(page.headers()["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        assert!(page.text().await.unwrap().contains(r#"data-resource="demo""#));
        let script = client.get(format!("{base}/book/book.js")).send().await.unwrap();
        assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
        let bad = client.get(format!("{base}/book/%22%3E%3Cscript%3E")).send().await.unwrap();
        assert_eq!(bad.status(), 400);
        assert!(!bad.text().await.unwrap().contains("<script>"));
        // The API routes are still the gateway's.
        let api = client.get(format!("{base}/v1/nothing")).send().await.unwrap();
        assert_eq!(api.status(), 404);
        drop(client);
        let _ = stop.send(());
        server.await.unwrap();
    }

    #[test]
    fn escaping_covers_attribute_breakers() {
        assert_eq!(escape_html(r#"a"b'c<d>&"#), "a&quot;b&#39;c&lt;d&gt;&amp;");
    }
}
