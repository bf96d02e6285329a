//! Who may call the admin routes (`PUT /v1/resources/{id}`, an admin cancel,
//! the local gateway's admin paths), and the constant-time comparison every
//! secret check uses.

use lambda_http::http::header;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    #[error("send the booking's cancel token as Authorization: Bearer <token>")]
    CancelTokenRequired,
}

super::problem::api_error!(AuthError {
    wraps: [],
    Self::Disabled => Forbidden,
    Self::AdminRequired | Self::CancelTokenRequired => Unauthorized,
});

/// The `Authorization: Bearer` credential, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
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
