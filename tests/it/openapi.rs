//! The OpenAPI document against the gateway that serves it: the document
//! `GET /openapi.json` answers is the committed `docs/openapi.json`, and its
//! operations are exactly the gateway's routes. (Every answer of every other
//! integration test is held to the document as well: `helpers::serve_checked`.)

use crate::helpers::spawn_app;
use serde_json::Value;
use slotguard_local::gateway::ROUTES;

#[tokio::test]
async fn the_gateway_serves_the_committed_document() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.text().await.unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    assert!(served == committed, "/openapi.json differs from docs/openapi.json");
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn the_documents_operations_are_the_gateways_routes() {
    let doc: Value = serde_json::from_str(&slotguard::api::openapi::json()).unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    routes.sort();
    assert_eq!(documented, routes, "operations in docs/openapi.json vs gateway::ROUTES (= template.yaml)");
}
