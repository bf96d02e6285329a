//! `GET /v1/resources/{id}`: what a booking page shows before it lists
//! slots: the resource's name, time zone and booking types, each with its
//! durations and prices, buffers, notice, advance window, day limit and the
//! cancellation and reschedule policy a customer agrees to. Public: nothing
//! here is secret (calendar targets are not shown).

use super::problem::api_error;
use super::{RequestError, json_response, path_param, respond};
use crate::domain::{BookingType, ResourceId};
use crate::ports::{ResourceStore, StoreError};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// Why a resource was not shown.
#[derive(Debug, thiserror::Error)]
pub enum ResourceViewError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("reading the resource")]
    Store(#[from] StoreError),
    #[error("there is no resource {0:?}")]
    NotFound(String),
}

api_error!(ResourceViewError {
    wraps: [Request, Store],
    Self::NotFound(_) => ResourceNotFound,
});

/// The `200` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResourceView<'a> {
    pub resource_id: &'a ResourceId,
    pub name: &'a str,
    pub timezone: &'a str,
    /// How long a hold keeps a slot while the customer pays.
    pub hold_minutes: u32,
    pub booking_types: &'a [BookingType],
}

/// Handles `GET /v1/resources/{id}`.
#[utoipa::path(
    get,
    path = "/v1/resources/{id}",
    tag = "booking",
    operation_id = "getResource",
    summary = "A resource's name, time zone and booking types",
    params(("id" = String, Path, example = "demo", description = "The resource id")),
    responses((status = 200, description = "The resource", body = ResourceView)),
)]
pub async fn resource_view<S: ResourceStore>(store: &S, req: Request) -> Response<Body> {
    respond(run(store, &req).await)
}

async fn run<S: ResourceStore>(store: &S, req: &Request) -> Result<Response<Body>, ResourceViewError> {
    let raw_id = path_param(req, "id")?;
    let not_found = || ResourceViewError::NotFound(raw_id.clone());
    let id = ResourceId::parse(&raw_id).map_err(|_| not_found())?;
    let resource = store.get_resource(&id).await?.ok_or_else(not_found)?;
    let view = ResourceView {
        resource_id: &resource.id,
        name: &resource.name,
        timezone: resource.timezone.name(),
        hold_minutes: resource.hold_minutes,
        booking_types: &resource.booking_types,
    };
    Ok(json_response(StatusCode::OK, &view))
}
