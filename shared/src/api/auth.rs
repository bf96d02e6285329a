//! Who may call what: the admin routes (`PUT /v1/resources/{id}`,
//! `GET /v1/admin/bookings`, an admin cancel or reschedule) need the admin;
//! a reservation's own routes (its details, checkout, cancel, reschedule)
//! need its secret (see [`crate::domain::secret`]) or the admin. Every
//! handler decides this before any side effect.

use lambda_http::http::header;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{Actor, SecretHash};

/// How admin routes authenticate their caller.
#[derive(Clone)]
pub enum AdminAuth {
    /// API Gateway's IAM authorizer vouches for the caller.
    Iam,
    /// The caller presents this bearer token.
    Token(String),
    /// No admin access is configured: admin routes answer 403.
    Disabled,
}

impl std::fmt::Debug for AdminAuth {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminAuth::Iam => "Iam",
            AdminAuth::Token(_) => "Token(..)",
            AdminAuth::Disabled => "Disabled",
        })
    }
}

impl AdminAuth {
    /// Whether `req` is an admin's.
    pub fn allows(&self, req: &Request) -> bool {
        match self {
            AdminAuth::Iam => matches!(
                req.request_context_ref(),
                Some(RequestContext::ApiGatewayV2(ctx)) if ctx.authorizer.as_ref().is_some_and(|a| a.iam.is_some())
            ),
            AdminAuth::Token(expected) => bearer(req).is_some_and(|given| same_secret(given, expected)),
            AdminAuth::Disabled => false,
        }
    }

    /// An error unless `req` is an admin's.
    pub fn require(&self, req: &Request) -> Result<(), AuthError> {
        match self {
            _ if self.allows(req) => Ok(()),
            AdminAuth::Disabled => Err(AuthError::Disabled),
            _ => Err(AuthError::AdminRequired),
        }
    }
}

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("admin access is not configured")]
    Disabled,
    #[error("admin credentials required")]
    AdminRequired,
    #[error("send the reservation's secret (from the 201 of POST /v1/reservations) as Authorization: Bearer <secret>")]
    SecretRequired,
}

super::problem::api_error!(AuthError {
    wraps: [],
    Self::Disabled => Forbidden,
    Self::AdminRequired | Self::SecretRequired => Unauthorized,
});

/// The `Authorization: Bearer` credential, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Who may act on a reservation: the admin (the host), or the customer
/// presenting the secret whose hash is `secret`. A reservation with no
/// stored hash (made before secrets existed) answers to the admin only.
pub fn authorize(admin: &AdminAuth, req: &Request, secret: Option<&SecretHash>) -> Result<Actor, AuthError> {
    if admin.allows(req) {
        return Ok(Actor::Host);
    }
    holds_secret(req, secret).then_some(Actor::Customer).ok_or(AuthError::SecretRequired)
}

/// Whether `req` presents the secret whose hash is `secret`.
pub fn holds_secret(req: &Request, secret: Option<&SecretHash>) -> bool {
    matches!((bearer(req), secret), (Some(given), Some(hash)) if hash.admits(given))
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    // Hashing first hides the lengths too.
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiError, ProblemKind};
    use lambda_http::Body;

    fn with_auth(value: Option<&str>) -> Request {
        let mut b = lambda_http::http::Request::builder();
        if let Some(v) = value {
            b = b.header(header::AUTHORIZATION, v);
        }
        b.body(Body::Empty).unwrap()
    }

    #[test]
    fn tokens_must_match_exactly() {
        let auth = AdminAuth::Token("s3cret".into());
        assert!(auth.allows(&with_auth(Some("Bearer s3cret"))));
        for bad in [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("s3cret"), Some("Basic s3cret")] {
            assert!(!auth.allows(&with_auth(bad)), "{bad:?} allowed");
        }
        assert_eq!(
            AdminAuth::Disabled.require(&with_auth(Some("Bearer s3cret"))).unwrap_err().kind(),
            ProblemKind::Forbidden
        );
        assert_eq!(auth.require(&with_auth(None)).unwrap_err().kind(), ProblemKind::Unauthorized);
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn iam_mode_requires_an_iam_identity_from_api_gateway() {
        assert!(!AdminAuth::Iam.allows(&with_auth(Some("Bearer anything"))));
    }
}
