//! `PUT /v1/resources/{id}`: create or replace a bookable resource (admin).
//!
//! On AWS the route uses IAM authorization, so API Gateway has already
//! authenticated the caller. Locally (and wherever IAM is not in front) the
//! caller must send `Authorization: Bearer {admin token}`.
//!
//! The resource's calendar target is checked against the deployment's rules
//! ([`CalendarTargetCheck`]: where its requests may go, which secrets it may
//! name) before anything is written; a refused target is a `422
//! invalid_resource` whose `detail` says why.

use super::auth::{AdminAuth, AuthError};
use super::problem::api_error;
use super::{RequestError, json_body, json_response, path_param, respond};
use crate::domain::{Resource, ResourceError, ResourceId, ResourceSpec};
use crate::ports::{CalendarTargetCheck, ResourceStore, StoreError};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

/// The `200` body: the spec as stored, and its `id`.
#[derive(Debug, serde::Serialize)]
pub struct StoredResource<'a> {
    pub id: &'a ResourceId,
    #[serde(flatten)]
    pub spec: &'a ResourceSpec,
}

/// Its schema is `ResourceSpec`'s with the `id` added, made by
/// [`super::openapi::document`]; this names it.
impl utoipa::ToSchema for StoredResource<'_> {}

impl utoipa::PartialSchema for StoredResource<'_> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::Ref::from_schema_name("ResourceSpec").into()
    }
}

/// Why a resource was not saved.
#[derive(Debug, thiserror::Error)]
pub enum PutResourceError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    InvalidId(ResourceError),
    #[error(transparent)]
    InvalidResource(ResourceError),
    #[error("saving the resource")]
    Store(#[from] StoreError),
}

api_error!(PutResourceError {
    wraps: [Auth, Request, Store],
    Self::InvalidId(_) => InvalidResourceId,
    Self::InvalidResource(_) => InvalidResource,
});

/// Handles `PUT /v1/resources/{id}`.
/// Handles `PUT /v1/resources/{id}` (admin).
#[utoipa::path(
    put,
    path = "/v1/resources/{id}",
    tag = "admin",
    operation_id = "putResource",
    summary = "Create or replace a resource and its booking types",
    params(("id" = String, Path, description = "1-64 characters of a-z, 0-9 and '-', not starting with '-'")),
    request_body = ResourceSpec,
    security(("adminToken" = []), ("awsSigV4" = [])),
    responses((status = 200, description = "The stored resource: the spec as stored, with its `id`", body = StoredResource)),
)]
pub async fn put_resource<S: ResourceStore, C: CalendarTargetCheck>(
    store: &S,
    auth: &AdminAuth,
    calendars: &C,
    req: Request,
) -> Response<Body> {
    respond(run(store, auth, calendars, &req).await)
}

async fn run<S: ResourceStore, C: CalendarTargetCheck>(
    store: &S,
    auth: &AdminAuth,
    calendars: &C,
    req: &Request,
) -> Result<Response<Body>, PutResourceError> {
    auth.require(req)?;
    let id = ResourceId::parse(&path_param(req, "id")?).map_err(PutResourceError::InvalidId)?;
    let spec: ResourceSpec = json_body(req)?;
    let resource = Resource::from_spec(id, spec).map_err(PutResourceError::InvalidResource)?;
    calendars.check_target(&resource.calendar).await.map_err(PutResourceError::InvalidResource)?;
    // A team's members must be resources that are not teams themselves (a
    // member's bookings are found through its own cells only). A member
    // deleted or turned into a team later stops being offered.
    if let Some(team) = &resource.team {
        for member in &team.members {
            match store.get_resource(member).await? {
                Some(m) if m.team.is_none() => {}
                Some(_) => {
                    return Err(PutResourceError::InvalidResource(ResourceError(format!(
                        "team.members: {member} is a team itself"
                    ))));
                }
                None => {
                    return Err(PutResourceError::InvalidResource(ResourceError(format!(
                        "team.members: there is no resource {member}"
                    ))));
                }
            }
        }
    }
    store.put_resource(&resource).await?;
    tracing::info!(resource_id = %resource.id, "resource saved");
    Ok(json_response(StatusCode::OK, &StoredResource { id: &resource.id, spec: &resource.spec }))
}
