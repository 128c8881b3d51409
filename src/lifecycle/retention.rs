//! Retention of the operational tables: what bankgate keeps to serve consents is deleted once
//! it has served, on a schedule the maintenance task runs (the audit log has its own,
//! `audit::retention`).
//!
//! The periods ([`PERIODS`], listed in README "Retention"):
//! - a consent, with everything kept for it (account references, bank grant, codes, refresh
//!   and access tokens, pending bank authorizations, access counts): 90 days after its expiry
//!   — also when it was revoked earlier, so that its platform and its person can still see how
//!   it ended;
//! - a consent that was never authorised (awaiting authorisation or rejected): 7 days after
//!   it was created, with the same;
//! - the bank grant of a consent that ended (revoked, expired or rejected): at the next run
//!   (nothing may read the bank with it any more);
//! - pushed requests and bank authorizations: at their expiry; authorization codes one day
//!   after theirs (a replay inside that day is still recognised as one);
//! - refresh tokens: at their expiry, or one day after they were revoked;
//! - webhook deliveries delivered or given up: 30 days after they were enqueued;
//! - unattended-access counts: every day before yesterday (UTC; only today's is read).
//!
//! A consent with a payment is kept with its payment, whose record follows its own rules.

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::store_error::StoreError;

/// How long each kind of operational record is kept past its use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// A consent (and what hangs off it) after its expiry.
    pub consent_after_expiry: Duration,
    /// A consent never authorised, after its creation.
    pub unauthorised_consent: Duration,
    /// An authorization code after its expiry.
    pub code_after_expiry: Duration,
    /// A revoked refresh token after its revocation.
    pub revoked_refresh_token: Duration,
    /// A finished webhook delivery after it was enqueued.
    pub finished_delivery: Duration,
    /// Access counts of days before this many days ago.
    pub access_count_days: i64,
}

/// The periods in force.
pub const PERIODS: Periods = Periods {
    consent_after_expiry: Duration::days(90),
    unauthorised_consent: Duration::days(7),
    code_after_expiry: Duration::days(1),
    revoked_refresh_token: Duration::days(1),
    finished_delivery: Duration::days(30),
    access_count_days: 1,
};

/// The instants before which each kind of record goes, computed once per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Pushed requests, bank authorizations and refresh tokens expired before this go.
    pub now: DateTime<Utc>,
    /// Consents that expired before this go.
    pub consents_expired_before: DateTime<Utc>,
    /// Consents never authorised and created before this go.
    pub unauthorised_created_before: DateTime<Utc>,
    /// Authorization codes that expired before this go.
    pub codes_expired_before: DateTime<Utc>,
    /// Refresh tokens revoked before this go.
    pub refresh_revoked_before: DateTime<Utc>,
    /// Delivered or failed webhook deliveries enqueued before this go.
    pub deliveries_created_before: DateTime<Utc>,
    /// Access counts of days before this go.
    pub access_counts_before: NaiveDate,
}

impl Periods {
    /// The cutoffs of a run at `now`.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        Cutoffs {
            now,
            consents_expired_before: now - self.consent_after_expiry,
            unauthorised_created_before: now - self.unauthorised_consent,
            codes_expired_before: now - self.code_after_expiry,
            refresh_revoked_before: now - self.revoked_refresh_token,
            deliveries_created_before: now - self.finished_delivery,
            access_counts_before: (now - Duration::days(self.access_count_days)).date_naive(),
        }
    }
}

/// How many records of each kind one run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub consents: u64,
    /// Bank grants (of ended consents, and of consents deleted).
    pub grants: u64,
    pub account_refs: u64,
    pub pushed_requests: u64,
    pub bank_authorizations: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub access_tokens: u64,
    pub deliveries: u64,
    pub access_counts: u64,
}

impl Purged {
    /// Whether the run deleted nothing.
    pub fn is_empty(&self) -> bool {
        *self == Purged::default()
    }
}

/// The storage side of retention: deletes, at once, everything the cutoffs say has served.
#[async_trait]
pub trait Retention: Send + Sync + 'static {
    async fn purge_operational(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cutoffs_follow_the_periods() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 0, 30, 0).unwrap();
        let cutoffs = PERIODS.cutoffs(now);
        assert_eq!(
            cutoffs.consents_expired_before,
            Utc.with_ymd_and_hms(2025, 12, 10, 0, 30, 0).unwrap()
        );
        assert_eq!(
            cutoffs.unauthorised_created_before,
            Utc.with_ymd_and_hms(2026, 3, 3, 0, 30, 0).unwrap()
        );
        assert_eq!(
            cutoffs.access_counts_before,
            NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
        );
        assert_eq!(
            cutoffs.deliveries_created_before,
            Utc.with_ymd_and_hms(2026, 2, 8, 0, 30, 0).unwrap()
        );
    }
}
