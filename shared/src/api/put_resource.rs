//! `PUT /v1/resources/{id}`: create or replace a bookable resource (admin).
//!
//! On AWS the route uses IAM authorization, so API Gateway has already
//! authenticated the caller. Locally (and wherever IAM is not in front) the
//! caller must send `Authorization: Bearer {admin token}`.

use super::auth::AdminAuth;
use super::{Problem, json_body, json_response, path_param, respond};
use crate::domain::{Resource, ResourceId, ResourceSpec};
use crate::ports::ResourceStore;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

/// Handles `PUT /v1/resources/{id}`.
pub async fn put_resource<S: ResourceStore>(store: &S, auth: &AdminAuth, req: Request) -> Response<Body> {
    respond(run(store, auth, &req).await)
}

async fn run<S: ResourceStore>(store: &S, auth: &AdminAuth, req: &Request) -> Result<Response<Body>, Problem> {
    auth.require(req)?;
    let id = ResourceId::parse(&path_param(req, "id")?)
        .map_err(|e| Problem::bad_request("invalid_resource_id", e.to_string()))?;
    let spec: ResourceSpec = json_body(req)?;
    let resource =
        Resource::from_spec(id, spec).map_err(|e| Problem::unprocessable("invalid_resource", e.to_string()))?;
    store.put_resource(&resource).await?;
    tracing::info!(resource_id = %resource.id, "resource saved");
    let mut body = serde_json::to_value(&resource.spec).expect("a spec always serialises");
    body["id"] = serde_json::Value::String(resource.id.to_string());
    Ok(json_response(StatusCode::OK, &body))
}
