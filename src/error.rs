//! The crate-level error: every failure on the request path, with its origin.
//!
//! [`Error::problem`] is the one table from error kind to problem type (status, `type` URI,
//! origin) and safe detail; `http::problem` is the one place that turns it into a response.

use http::StatusCode;

use crate::access::Denial;
use crate::adapters::bank_oauth::BankTokenError;
use crate::adapters::{AdapterError, ConsentEnd};
use crate::consent::Unusable;
use crate::lifecycle::LifecycleError;
use crate::oauth::client_auth::ClientAuthError;
use crate::payments::submit::Refusal as PaymentRefusal;
use crate::payments::{Invalid, LimitRefusal};
use crate::policy::Refusal;
use crate::store::StoreError;

pub use crate::oauth::OAuthError;

/// Who caused an error, as pingora's `ErrorSource`: it picks the status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The caller sent something wrong or is not allowed: 4xx.
    Caller,
    /// The bank failed: 502 or 504.
    Bank,
    /// bankgate itself failed: 500 or 503.
    Internal,
}

/// Every error the gateway answers with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed. The reason is safe to show and is audited.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A data request refused by the access decision (audited), each kind its own type.
    #[error("denied: {0}")]
    Denied(Denial),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The path exists, the method does not (the response keeps the router's `Allow`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is over `max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body is not of the media type the route reads.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("oauth error {}: {}", .0.code, .0.description)]
    OAuth(OAuthError),
    /// `POST /v1/payments` without a valid `Idempotency-Key`.
    #[error("idempotency key: {0}")]
    IdempotencyKey(String),
    /// A payment submission refused, each kind its own type.
    #[error("payment refused: {0}")]
    Payment(PaymentRefusal),
    /// The platform asked more payee verifications this minute than it may (audited).
    #[error("payee verifications throttled")]
    PayeeVerificationThrottled { retry_after_secs: u64 },
    /// The client address started more sign-ins than `sign_in_starts_per_minute` allows.
    #[error("sign-in starts throttled")]
    SignInThrottled { retry_after_secs: u64 },
    /// Another consent (another user of the platform) holds the payee handle.
    #[error("payee handle taken: {0}")]
    PayeeHandleTaken(String),
    #[error("bank error")]
    Bank(#[from] AdapterError),
    /// The audit log cannot take the record: fail closed.
    #[error("audit store unavailable")]
    AuditUnavailable(#[source] StoreError),
    #[error("store error")]
    Store(#[from] StoreError),
    #[error("request timed out")]
    Timeout,
    #[error("gateway overloaded")]
    Overloaded,
    /// A part the instance needs is not ready (`/readyz`); the text names it.
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One kind of problem a client can be answered with: the last segment of its `type` URI
/// (`http::problem::TYPE_BASE` + slug), its status, and who caused it. README lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    pub slug: &'static str,
    pub status: StatusCode,
    pub origin: Origin,
}

/// The problem types, one constant each; [`Error::problem`] is the one table from error kind
/// to type and safe detail.
pub mod problem_types {
    use super::{Origin, ProblemType};
    use http::StatusCode;

    const fn caller(slug: &'static str, status: StatusCode) -> ProblemType {
        ProblemType {
            slug,
            status,
            origin: Origin::Caller,
        }
    }

    const fn bank(slug: &'static str, status: StatusCode) -> ProblemType {
        ProblemType {
            slug,
            status,
            origin: Origin::Bank,
        }
    }

    const fn internal(slug: &'static str, status: StatusCode) -> ProblemType {
        ProblemType {
            slug,
            status,
            origin: Origin::Internal,
        }
    }

    pub const UNAUTHENTICATED: ProblemType = caller("unauthenticated", StatusCode::UNAUTHORIZED);
    pub const FORBIDDEN: ProblemType = caller("forbidden", StatusCode::FORBIDDEN);
    pub const NOT_FOUND: ProblemType = caller("not-found", StatusCode::NOT_FOUND);
    pub const INVALID_REQUEST: ProblemType = caller("invalid-request", StatusCode::BAD_REQUEST);
    pub const METHOD_NOT_ALLOWED: ProblemType =
        caller("method-not-allowed", StatusCode::METHOD_NOT_ALLOWED);
    pub const PAYLOAD_TOO_LARGE: ProblemType =
        caller("payload-too-large", StatusCode::PAYLOAD_TOO_LARGE);
    pub const UNSUPPORTED_MEDIA_TYPE: ProblemType =
        caller("unsupported-media-type", StatusCode::UNSUPPORTED_MEDIA_TYPE);
    pub const OAUTH: ProblemType = caller("oauth", StatusCode::BAD_REQUEST);
    pub const OAUTH_CLIENT: ProblemType = caller("oauth", StatusCode::UNAUTHORIZED);
    // Data-request denials.
    pub const TOKEN_UNKNOWN: ProblemType = caller("token-unknown", StatusCode::UNAUTHORIZED);
    pub const TOKEN_REVOKED: ProblemType = caller("token-revoked", StatusCode::UNAUTHORIZED);
    pub const DPOP_PROOF_REPLAYED: ProblemType =
        caller("dpop-proof-replayed", StatusCode::UNAUTHORIZED);
    pub const CONSENT_NOT_FOUND: ProblemType = caller("consent-not-found", StatusCode::FORBIDDEN);
    pub const CONSENT_NOT_AUTHORISED: ProblemType =
        caller("consent-not-authorised", StatusCode::FORBIDDEN);
    pub const CONSENT_REVOKED: ProblemType = caller("consent-revoked", StatusCode::FORBIDDEN);
    pub const CONSENT_EXPIRED: ProblemType = caller("consent-expired", StatusCode::FORBIDDEN);
    pub const SCOPE_NOT_GRANTED: ProblemType = caller("scope-not-granted", StatusCode::FORBIDDEN);
    pub const PLATFORM_NOT_REGISTERED: ProblemType =
        caller("platform-not-registered", StatusCode::FORBIDDEN);
    pub const PURPOSE_WITHDRAWN: ProblemType = caller("purpose-withdrawn", StatusCode::FORBIDDEN);
    pub const PLATFORM_NOT_APPROVED: ProblemType =
        caller("platform-not-approved", StatusCode::FORBIDDEN);
    pub const REGION_NOT_ALLOWED: ProblemType = caller("region-not-allowed", StatusCode::FORBIDDEN);
    pub const PURPOSE_REFUSED: ProblemType = caller("purpose-refused", StatusCode::FORBIDDEN);
    pub const CONSENT_OUTLIVED_POLICY: ProblemType =
        caller("consent-outlived-policy", StatusCode::FORBIDDEN);
    pub const BUDGET_SPENT: ProblemType = caller("budget-spent", StatusCode::TOO_MANY_REQUESTS);
    pub const BUDGET_UNCOUNTED: ProblemType =
        internal("budget-uncounted", StatusCode::SERVICE_UNAVAILABLE);
    pub const ACCOUNT_NOT_IN_CONSENT: ProblemType =
        caller("account-not-in-consent", StatusCode::NOT_FOUND);
    // Payments.
    pub const IDEMPOTENCY_KEY_REQUIRED: ProblemType =
        caller("idempotency-key-required", StatusCode::BAD_REQUEST);
    pub const PAYMENT_CONSENT_USED: ProblemType =
        caller("payment-consent-used", StatusCode::CONFLICT);
    pub const PAYMENT_IN_FLIGHT: ProblemType = caller("payment-in-flight", StatusCode::CONFLICT);
    pub const PAYMENT_KEY_REUSED: ProblemType =
        caller("payment-key-reused", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_DOES_NOT_MATCH_CONSENT: ProblemType = caller(
        "payment-does-not-match-consent",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_INVALID_TYPE: ProblemType =
        caller("payment-invalid-type", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_AMOUNT_NOT_POSITIVE: ProblemType = caller(
        "payment-amount-not-positive",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_UNKNOWN_CURRENCY: ProblemType =
        caller("payment-unknown-currency", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_AMOUNT_TOO_PRECISE: ProblemType = caller(
        "payment-amount-too-precise",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_INVALID_IBAN: ProblemType =
        caller("payment-invalid-iban", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_INVALID_CREDITOR_NAME: ProblemType = caller(
        "payment-invalid-creditor-name",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_REMITTANCE_TOO_LONG: ProblemType = caller(
        "payment-remittance-too-long",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_INVALID_USER_REF: ProblemType =
        caller("payment-invalid-user-ref", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_PAYEE_IS_PAYER: ProblemType =
        caller("payment-payee-is-payer", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_PURPOSE_NOT_ALLOWED: ProblemType =
        caller("payment-purpose-not-allowed", StatusCode::FORBIDDEN);
    pub const PAYMENT_CURRENCY_NOT_ALLOWED: ProblemType = caller(
        "payment-currency-not-allowed",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_LIMIT_PER_PAYMENT: ProblemType = caller(
        "payment-limit-per-payment",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYMENT_LIMIT_PER_DAY: ProblemType =
        caller("payment-limit-per-day", StatusCode::UNPROCESSABLE_ENTITY);
    pub const PAYMENT_INSTANT_NOT_ALLOWED: ProblemType = caller(
        "payment-instant-not-allowed",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    pub const PAYEE_VERIFICATION_THROTTLED: ProblemType = caller(
        "payee-verification-throttled",
        StatusCode::TOO_MANY_REQUESTS,
    );
    pub const PAYEE_HANDLE_TAKEN: ProblemType = caller("payee-handle-taken", StatusCode::CONFLICT);
    /// Answered as the connected-apps error page (HTML), with `Retry-After`.
    pub const SIGN_IN_THROTTLED: ProblemType =
        caller("sign-in-throttled", StatusCode::TOO_MANY_REQUESTS);
    pub const PAYMENT_PAYEE_UNAVAILABLE: ProblemType =
        caller("payment-payee-unavailable", StatusCode::CONFLICT);
    // Banks.
    pub const BANK_TIMEOUT: ProblemType = bank("bank-timeout", StatusCode::GATEWAY_TIMEOUT);
    pub const UNKNOWN_ACCOUNT: ProblemType = bank("unknown-account", StatusCode::NOT_FOUND);
    pub const BANK_UNAVAILABLE: ProblemType =
        bank("bank-unavailable", StatusCode::SERVICE_UNAVAILABLE);
    pub const BANK_ERROR: ProblemType = bank("bank-error", StatusCode::BAD_GATEWAY);
    /// The bank ended the consent on its side (revoked in its app, expired, its grant
    /// refused): bankgate's consent is revoked with it; the user must consent again.
    pub const CONSENT_REVOKED_BY_BANK: ProblemType =
        caller("consent-revoked-by-bank", StatusCode::FORBIDDEN);
    // The gateway.
    pub const AUDIT_UNAVAILABLE: ProblemType =
        internal("audit-unavailable", StatusCode::SERVICE_UNAVAILABLE);
    pub const STORE_UNAVAILABLE: ProblemType =
        internal("store-unavailable", StatusCode::SERVICE_UNAVAILABLE);
    pub const STORE_ERROR: ProblemType = internal("store-error", StatusCode::INTERNAL_SERVER_ERROR);
    pub const TIMEOUT: ProblemType = internal("timeout", StatusCode::GATEWAY_TIMEOUT);
    pub const OVERLOADED: ProblemType = internal("overloaded", StatusCode::SERVICE_UNAVAILABLE);
    pub const NOT_READY: ProblemType = internal("not-ready", StatusCode::SERVICE_UNAVAILABLE);
    pub const INTERNAL: ProblemType = internal("internal", StatusCode::INTERNAL_SERVER_ERROR);

    /// Every problem type a problem+json response can carry (the OAuth endpoints answer in
    /// RFC 6749's form instead).
    pub const ALL: &[ProblemType] = &[
        UNAUTHENTICATED,
        FORBIDDEN,
        NOT_FOUND,
        INVALID_REQUEST,
        METHOD_NOT_ALLOWED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        TOKEN_UNKNOWN,
        TOKEN_REVOKED,
        DPOP_PROOF_REPLAYED,
        CONSENT_NOT_FOUND,
        CONSENT_NOT_AUTHORISED,
        CONSENT_REVOKED,
        CONSENT_EXPIRED,
        SCOPE_NOT_GRANTED,
        PLATFORM_NOT_REGISTERED,
        PURPOSE_WITHDRAWN,
        PLATFORM_NOT_APPROVED,
        REGION_NOT_ALLOWED,
        PURPOSE_REFUSED,
        CONSENT_OUTLIVED_POLICY,
        BUDGET_SPENT,
        BUDGET_UNCOUNTED,
        ACCOUNT_NOT_IN_CONSENT,
        IDEMPOTENCY_KEY_REQUIRED,
        PAYMENT_CONSENT_USED,
        PAYMENT_IN_FLIGHT,
        PAYMENT_KEY_REUSED,
        PAYMENT_DOES_NOT_MATCH_CONSENT,
        PAYMENT_INVALID_TYPE,
        PAYMENT_AMOUNT_NOT_POSITIVE,
        PAYMENT_UNKNOWN_CURRENCY,
        PAYMENT_AMOUNT_TOO_PRECISE,
        PAYMENT_INVALID_IBAN,
        PAYMENT_INVALID_CREDITOR_NAME,
        PAYMENT_REMITTANCE_TOO_LONG,
        PAYMENT_INVALID_USER_REF,
        PAYMENT_PAYEE_IS_PAYER,
        PAYMENT_PURPOSE_NOT_ALLOWED,
        PAYMENT_CURRENCY_NOT_ALLOWED,
        PAYMENT_LIMIT_PER_PAYMENT,
        PAYMENT_LIMIT_PER_DAY,
        PAYMENT_INSTANT_NOT_ALLOWED,
        PAYEE_VERIFICATION_THROTTLED,
        PAYEE_HANDLE_TAKEN,
        SIGN_IN_THROTTLED,
        PAYMENT_PAYEE_UNAVAILABLE,
        BANK_TIMEOUT,
        UNKNOWN_ACCOUNT,
        BANK_UNAVAILABLE,
        BANK_ERROR,
        CONSENT_REVOKED_BY_BANK,
        AUDIT_UNAVAILABLE,
        STORE_UNAVAILABLE,
        STORE_ERROR,
        TIMEOUT,
        OVERLOADED,
        NOT_READY,
        INTERNAL,
    ];
}

impl Error {
    /// The one table: the error's problem type and the text safe to show the caller (never a
    /// database or bank message).
    pub fn problem(&self) -> (ProblemType, String) {
        use problem_types as p;
        match self {
            Error::Unauthenticated(detail) => (p::UNAUTHENTICATED, detail.clone()),
            Error::Forbidden(detail) => (p::FORBIDDEN, detail.clone()),
            Error::Denied(denial) => (denial_type(denial), denial.to_string()),
            Error::NotFound(detail) => (p::NOT_FOUND, detail.clone()),
            Error::InvalidRequest(detail) => (p::INVALID_REQUEST, detail.clone()),
            Error::MethodNotAllowed => (
                p::METHOD_NOT_ALLOWED,
                "this path does not take this method (see Allow)".into(),
            ),
            Error::PayloadTooLarge => (
                p::PAYLOAD_TOO_LARGE,
                "the request body is larger than the gateway accepts".into(),
            ),
            Error::UnsupportedMediaType(detail) => (p::UNSUPPORTED_MEDIA_TYPE, detail.clone()),
            Error::OAuth(error) if error.status == StatusCode::UNAUTHORIZED => {
                (p::OAUTH_CLIENT, error.description.clone())
            }
            Error::OAuth(error) => (p::OAUTH, error.description.clone()),
            Error::IdempotencyKey(detail) => (p::IDEMPOTENCY_KEY_REQUIRED, detail.clone()),
            Error::Payment(refusal) => (payment_type(refusal), refusal.to_string()),
            Error::PayeeVerificationThrottled { .. } => (
                p::PAYEE_VERIFICATION_THROTTLED,
                "this platform asked as many payee verifications this minute as it may; retry \
                 after Retry-After"
                    .into(),
            ),
            Error::SignInThrottled { .. } => (
                p::SIGN_IN_THROTTLED,
                "too many sign-ins were started from your address; try again in a moment".into(),
            ),
            Error::PayeeHandleTaken(handle) => (
                p::PAYEE_HANDLE_TAKEN,
                format!(
                    "the handle {handle} is held by another user of this platform; it is freed \
                     when they delete it or their consent ends"
                ),
            ),
            Error::Bank(error) => (
                match error.root() {
                    AdapterError::Timeout => p::BANK_TIMEOUT,
                    AdapterError::UnknownAccount => p::UNKNOWN_ACCOUNT,
                    AdapterError::CircuitOpen | AdapterError::Saturated => p::BANK_UNAVAILABLE,
                    AdapterError::ConsentEnded(end) if *end != ConsentEnd::Invalid => {
                        p::CONSENT_REVOKED_BY_BANK
                    }
                    _ => p::BANK_ERROR,
                },
                bank_detail(error),
            ),
            Error::AuditUnavailable(_) => (
                p::AUDIT_UNAVAILABLE,
                "the audit log is unavailable, so no data can be released; retry later".into(),
            ),
            Error::Store(StoreError::Unavailable(_)) => (
                p::STORE_UNAVAILABLE,
                "storage is unavailable; retry later".into(),
            ),
            Error::Store(_) => (p::STORE_ERROR, "internal error".into()),
            Error::Timeout => (p::TIMEOUT, "the request took too long".into()),
            Error::Overloaded => (
                p::OVERLOADED,
                "the gateway is overloaded; retry later".into(),
            ),
            Error::NotReady(parts) => (p::NOT_READY, format!("not ready: {parts}")),
            Error::Internal(_) => (p::INTERNAL, "internal error".into()),
        }
    }

    /// Who caused it.
    pub fn origin(&self) -> Origin {
        self.problem().0.origin
    }

    /// The HTTP status it maps to.
    pub fn status(&self) -> StatusCode {
        self.problem().0.status
    }

    /// Text safe to show the caller: never a database or bank message.
    pub fn safe_detail(&self) -> String {
        self.problem().1
    }
}

/// The problem type of each denial kind.
fn denial_type(denial: &Denial) -> ProblemType {
    use problem_types as p;
    match denial {
        Denial::TokenUnknown => p::TOKEN_UNKNOWN,
        Denial::TokenRevoked => p::TOKEN_REVOKED,
        Denial::ProofReplayed => p::DPOP_PROOF_REPLAYED,
        Denial::ConsentNotFound => p::CONSENT_NOT_FOUND,
        Denial::Consent(unusable) => unusable_type(*unusable),
        Denial::ScopeNotGranted(_) => p::SCOPE_NOT_GRANTED,
        Denial::PlatformNotRegistered => p::PLATFORM_NOT_REGISTERED,
        Denial::Policy(refusal) => match refusal {
            Refusal::UnknownPurpose(_) | Refusal::Withdrawn(_) | Refusal::Prohibited { .. } => {
                p::PURPOSE_WITHDRAWN
            }
            Refusal::NotApproved(_) => p::PLATFORM_NOT_APPROVED,
            Refusal::Region { .. } => p::REGION_NOT_ALLOWED,
            Refusal::NoScope | Refusal::Scope { .. } => p::PURPOSE_REFUSED,
            Refusal::ConsentTooOld { .. } => p::CONSENT_OUTLIVED_POLICY,
        },
        Denial::BudgetSpent { .. } => p::BUDGET_SPENT,
        Denial::BudgetUncounted => p::BUDGET_UNCOUNTED,
        Denial::AccountNotInConsent => p::ACCOUNT_NOT_IN_CONSENT,
    }
}

/// The problem type of each reason a consent cannot be used, for data and payments alike.
fn unusable_type(unusable: Unusable) -> ProblemType {
    use problem_types as p;
    match unusable {
        Unusable::NotAuthorised(_) => p::CONSENT_NOT_AUTHORISED,
        Unusable::Revoked => p::CONSENT_REVOKED,
        Unusable::Expired => p::CONSENT_EXPIRED,
    }
}

/// The problem type of each payment refusal kind.
fn payment_type(refusal: &PaymentRefusal) -> ProblemType {
    use problem_types as p;
    match refusal {
        PaymentRefusal::NotAPaymentConsent => p::SCOPE_NOT_GRANTED,
        PaymentRefusal::Consent(unusable) => unusable_type(*unusable),
        PaymentRefusal::ConsentUsed => p::PAYMENT_CONSENT_USED,
        PaymentRefusal::BodyDiffers(_) => p::PAYMENT_DOES_NOT_MATCH_CONSENT,
        PaymentRefusal::KeyReused => p::PAYMENT_KEY_REUSED,
        PaymentRefusal::InFlight => p::PAYMENT_IN_FLIGHT,
        PaymentRefusal::PayeeGone(_) => p::PAYMENT_PAYEE_UNAVAILABLE,
        PaymentRefusal::Invalid(invalid) => match invalid {
            Invalid::WrongType => p::PAYMENT_INVALID_TYPE,
            Invalid::AmountNotPositive => p::PAYMENT_AMOUNT_NOT_POSITIVE,
            Invalid::UnknownCurrency(_) => p::PAYMENT_UNKNOWN_CURRENCY,
            Invalid::TooPrecise { .. } => p::PAYMENT_AMOUNT_TOO_PRECISE,
            Invalid::InvalidIban => p::PAYMENT_INVALID_IBAN,
            Invalid::CreditorName => p::PAYMENT_INVALID_CREDITOR_NAME,
            Invalid::RemittanceTooLong => p::PAYMENT_REMITTANCE_TOO_LONG,
            Invalid::NoUserRef => p::PAYMENT_INVALID_USER_REF,
            Invalid::PayeeIsPayer => p::PAYMENT_PAYEE_IS_PAYER,
        },
        PaymentRefusal::Limit(limit) => match limit {
            LimitRefusal::NotAPaymentPurpose { .. } => p::PAYMENT_PURPOSE_NOT_ALLOWED,
            LimitRefusal::Currency { .. } => p::PAYMENT_CURRENCY_NOT_ALLOWED,
            LimitRefusal::PerPayment { .. } => p::PAYMENT_LIMIT_PER_PAYMENT,
            LimitRefusal::PerDay { .. } => p::PAYMENT_LIMIT_PER_DAY,
            LimitRefusal::Instant { .. } => p::PAYMENT_INSTANT_NOT_ALLOWED,
        },
    }
}

/// What a caller may know about a bank failure: which bank, and what kind of failure, in
/// gateway words (never the bank's message, which may hold anything).
fn bank_detail(error: &AdapterError) -> String {
    let bank = match error.bank() {
        Some(bank) => format!("bank {bank}"),
        None => "the bank".to_owned(),
    };
    match error.root() {
        AdapterError::Timeout => format!("{bank} did not answer in time"),
        AdapterError::UnknownAccount => "no such account under this consent".into(),
        AdapterError::Transport(_) => format!("the connection to {bank} failed"),
        // bankgate's own words of what the handshake refused (never the bank's text).
        AdapterError::Tls(problem) => format!("the TLS handshake with {bank} failed: {problem}"),
        AdapterError::Status { status } => {
            format!("{bank} answered with an error (HTTP {status})")
        }
        AdapterError::Decode(_) => {
            format!("{bank} answered with a payload bankgate could not read")
        }
        AdapterError::ErrorBody(_) => format!("{bank} answered with an error"),
        AdapterError::ConsentEnded(ConsentEnd::Invalid) => {
            format!("{bank} refused the consent")
        }
        AdapterError::ConsentEnded(end) => format!(
            "{bank} reports the consent {end}: bankgate revoked it; the user must consent again"
        ),
        AdapterError::TooLarge { limit } => {
            format!("{bank} answered with more than {limit} bytes")
        }
        AdapterError::CircuitOpen => {
            format!("{bank} is temporarily unavailable: recent calls to it failed; retry later")
        }
        AdapterError::Saturated => {
            format!("{bank} has too many requests in flight; retry later")
        }
        AdapterError::Refused(_) | AdapterError::AtBank { .. } => {
            format!("{bank} could not serve the request")
        }
    }
}

impl From<OAuthError> for Error {
    fn from(error: OAuthError) -> Self {
        Error::OAuth(error)
    }
}

impl From<ClientAuthError> for Error {
    fn from(error: ClientAuthError) -> Self {
        match error {
            ClientAuthError::OAuth(error) => Error::OAuth(error),
            ClientAuthError::Store(error) => Error::Store(error),
        }
    }
}

impl From<BankTokenError> for Error {
    fn from(error: BankTokenError) -> Self {
        match error {
            BankTokenError::Bank(error) => Error::Bank(error),
            BankTokenError::Store(error) => Error::Store(error),
            BankTokenError::Sealing(error) => error.into(),
            BankTokenError::Internal(detail) => Error::Internal(detail),
        }
    }
}

impl From<LifecycleError> for Error {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::AuditUnavailable(error) => Error::AuditUnavailable(error),
            LifecycleError::Store(error) => Error::Store(error),
            LifecycleError::Signing(_) | LifecycleError::HttpClient(_) => {
                Error::Internal(error.to_string())
            }
        }
    }
}

impl From<crate::crypto::CryptoError> for Error {
    fn from(error: crate::crypto::CryptoError) -> Self {
        Error::Internal(error.to_string())
    }
}

impl From<Denial> for Error {
    fn from(denial: Denial) -> Self {
        Error::Denied(denial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentStatus;
    use crate::model::Scope;

    #[test]
    fn readme_lists_every_problem_type_with_its_status() {
        let readme = include_str!("../README.md");
        for kind in problem_types::ALL {
            let row = format!("| `{}` | {} |", kind.slug, kind.status.as_u16());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
        let mut slugs: Vec<_> = problem_types::ALL.iter().map(|kind| kind.slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), problem_types::ALL.len(), "slugs are unique");
    }

    #[test]
    fn every_denial_kind_has_its_own_type() {
        let denials = [
            Denial::TokenUnknown,
            Denial::TokenRevoked,
            Denial::ProofReplayed,
            Denial::ConsentNotFound,
            Denial::Consent(Unusable::NotAuthorised(ConsentStatus::Rejected)),
            Denial::Consent(Unusable::Revoked),
            Denial::Consent(Unusable::Expired),
            Denial::ScopeNotGranted(Scope::Balances),
            Denial::PlatformNotRegistered,
            Denial::Policy(Refusal::Withdrawn("p".into())),
            Denial::Policy(Refusal::NotApproved("p".into())),
            Denial::Policy(Refusal::Region {
                purpose: "p".into(),
                region: "US".into(),
                allowed: "EEA".into(),
            }),
            Denial::Policy(Refusal::Scope {
                purpose: "p".into(),
                scope: Scope::Transactions,
            }),
            Denial::Policy(Refusal::ConsentTooOld {
                purpose: "p".into(),
                days: 90,
            }),
            Denial::BudgetSpent {
                purpose: "p".into(),
                limit: 4,
                retry_after_secs: 60,
            },
            Denial::BudgetUncounted,
            Denial::AccountNotInConsent,
        ];
        let mut slugs = Vec::new();
        for denial in denials {
            let error = Error::Denied(denial.clone());
            let (kind, detail) = error.problem();
            assert!(problem_types::ALL.contains(&kind), "{denial:?}");
            assert_eq!(detail, denial.to_string());
            assert_eq!(error.status(), kind.status);
            slugs.push(kind.slug);
        }
        let n = slugs.len();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), n, "one type per denial kind");
    }
}
