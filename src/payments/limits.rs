//! A payment purpose's limits (the `[payment]` table of its policy): per payment, per user and
//! day, the currencies, and whether instant payments are allowed. Checked at PAR and again at
//! submission; pure.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use super::ValidPayment;

/// The limits of a payment purpose. Amounts are in the payment's currency: a policy allowing
/// several currencies allows the same figures in each, and the daily limit counts one currency
/// at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLimits {
    /// The largest single payment.
    pub max_amount_per_payment: Decimal,
    /// The most one user may pay through one platform in one UTC day, this payment included.
    pub max_amount_per_day: Decimal,
    /// ISO 4217 codes a payment may be in.
    pub currencies: BTreeSet<String>,
    /// Whether a payment may ask for an instant credit transfer.
    pub instant_allowed: bool,
}

/// Why the limits refuse a payment. The text is safe to show the platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("purpose {purpose} does not allow payments")]
    NotAPaymentPurpose { purpose: String },
    #[error("purpose {purpose} allows payments in {allowed} only")]
    Currency { purpose: String, allowed: String },
    #[error("purpose {purpose} allows at most {max} {currency} per payment")]
    PerPayment {
        purpose: String,
        max: Decimal,
        currency: String,
    },
    #[error(
        "purpose {purpose} allows at most {max} {currency} per day and user; {spent} already paid today"
    )]
    PerDay {
        purpose: String,
        max: Decimal,
        spent: Decimal,
        currency: String,
    },
    #[error("purpose {purpose} does not allow instant payments")]
    Instant { purpose: String },
}

impl LimitRefusal {
    /// The stable slug of the problem type.
    pub fn slug(&self) -> &'static str {
        match self {
            LimitRefusal::NotAPaymentPurpose { .. } => "payment-purpose-not-allowed",
            LimitRefusal::Currency { .. } => "payment-currency-not-allowed",
            LimitRefusal::PerPayment { .. } => "payment-limit-per-payment",
            LimitRefusal::PerDay { .. } => "payment-limit-per-day",
            LimitRefusal::Instant { .. } => "payment-instant-not-allowed",
        }
    }
}

impl PaymentLimits {
    /// Checks a payment of purpose `purpose` against the limits; `spent_today` is what the same
    /// user already paid through the same platform today in the payment's currency (not counting
    /// refused or rejected payments, nor this one).
    pub fn check(
        &self,
        purpose: &str,
        payment: &ValidPayment,
        spent_today: Decimal,
    ) -> Result<(), LimitRefusal> {
        let currency = payment.currency_code();
        if !self.currencies.contains(currency) {
            return Err(LimitRefusal::Currency {
                purpose: purpose.to_owned(),
                allowed: self
                    .currencies
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if payment.request.instant && !self.instant_allowed {
            return Err(LimitRefusal::Instant {
                purpose: purpose.to_owned(),
            });
        }
        if payment.amount() > self.max_amount_per_payment {
            return Err(LimitRefusal::PerPayment {
                purpose: purpose.to_owned(),
                max: self.max_amount_per_payment,
                currency: currency.to_owned(),
            });
        }
        let over = spent_today
            .checked_add(payment.amount())
            .is_none_or(|total| total > self.max_amount_per_day);
        if over {
            return Err(LimitRefusal::PerDay {
                purpose: purpose.to_owned(),
                max: self.max_amount_per_day,
                spent: spent_today,
                currency: currency.to_owned(),
            });
        }
        Ok(())
    }
}
