//! The canonical payment status, normalised from the ISO 20022 `ExternalPaymentTransactionStatus`
//! codes every standard uses (Berlin Group and STET directly, OBIE 4 directly, OBIE 3 by name),
//! with the bank's raw code kept, and rejection reasons from ISO 20022 reason codes.

use crate::model::WireName;
use serde::{Deserialize, Serialize};

/// Why a bank rejected a payment, in bankgate's words (never the bank's own text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum RejectionReason {
    /// AM04: the payer's account does not hold enough.
    InsufficientFunds,
    /// AC04: the account is closed.
    AccountClosed,
    /// AC06, AG01: the account is blocked or may not make this payment.
    AccountBlocked,
    /// AC01, AC03, BE01: the payee's account is wrong or unknown.
    InvalidCreditorAccount,
    /// AM02, AM14, AM18: above what the bank allows.
    AmountNotAllowed,
    /// AM05, DUPL: the bank already has this payment.
    Duplicate,
    /// RR01–RR12, FOCR: regulatory or compliance refusal.
    Regulatory,
    /// No reason, or one bankgate does not map.
    Other,
}

impl RejectionReason {
    /// The canonical reason of an ISO 20022 reason code (`AM04`, …); `Other` for none or an
    /// unmapped one.
    pub fn from_code(code: Option<&str>) -> RejectionReason {
        let Some(code) = code else {
            return RejectionReason::Other;
        };
        match code.trim().to_ascii_uppercase().as_str() {
            "AM04" => RejectionReason::InsufficientFunds,
            "AC04" => RejectionReason::AccountClosed,
            "AC06" | "AG01" => RejectionReason::AccountBlocked,
            "AC01" | "AC03" | "BE01" => RejectionReason::InvalidCreditorAccount,
            "AM02" | "AM14" | "AM18" => RejectionReason::AmountNotAllowed,
            "AM05" | "DUPL" => RejectionReason::Duplicate,
            "FOCR" => RejectionReason::Regulatory,
            other if other.starts_with("RR") => RejectionReason::Regulatory,
            _ => RejectionReason::Other,
        }
    }
}

impl WireName for RejectionReason {}

/// The canonical status of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "status", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PaymentStatus {
    /// RCVD: the bank has the payment, nothing checked yet.
    Received,
    /// ACTC, ACCP, ACFC, ACWC, PATC: checked and accepted for execution.
    Accepted,
    /// ACSP, ACWP: the payer's side is done, settlement is under way.
    SettlementInProcess,
    /// ACSC, ACCC: settled.
    Settled,
    /// PDNG, PART: waiting for something (a check, a further authorisation).
    Pending,
    /// RJCT.
    Rejected { reason: RejectionReason },
    /// CANC.
    Cancelled,
}

impl PaymentStatus {
    /// The canonical status of an ISO 20022 status code; `reason` is the ISO reason code a
    /// rejection came with, if any. `None` for a code bankgate does not know (the adapter
    /// reports the bank's payload as not understood rather than guess).
    pub fn from_iso20022(code: &str, reason: Option<&str>) -> Option<PaymentStatus> {
        Some(match code.trim().to_ascii_uppercase().as_str() {
            "RCVD" => PaymentStatus::Received,
            "ACTC" | "ACCP" | "ACFC" | "ACWC" | "PATC" => PaymentStatus::Accepted,
            "ACSP" | "ACWP" => PaymentStatus::SettlementInProcess,
            "ACSC" | "ACCC" => PaymentStatus::Settled,
            "PDNG" | "PART" => PaymentStatus::Pending,
            "RJCT" => PaymentStatus::Rejected {
                reason: RejectionReason::from_code(reason),
            },
            "CANC" => PaymentStatus::Cancelled,
            _ => return None,
        })
    }

    /// The wire name (`settlement_in_process`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the wire name; a rejection needs its reason's wire name.
    pub fn parse(name: &str, reason: Option<&str>) -> Option<PaymentStatus> {
        Some(match name {
            "received" => PaymentStatus::Received,
            "accepted" => PaymentStatus::Accepted,
            "settlement_in_process" => PaymentStatus::SettlementInProcess,
            "settled" => PaymentStatus::Settled,
            "pending" => PaymentStatus::Pending,
            "rejected" => PaymentStatus::Rejected {
                reason: RejectionReason::parse(reason?)?,
            },
            "cancelled" => PaymentStatus::Cancelled,
            _ => return None,
        })
    }

    /// The reason of a rejection.
    pub fn reason(self) -> Option<RejectionReason> {
        match self {
            PaymentStatus::Rejected { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether the status can no longer change: settled, rejected or cancelled.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PaymentStatus::Settled | PaymentStatus::Rejected { .. } | PaymentStatus::Cancelled
        )
    }

    /// How far along a payment is, for refusing a status that goes backwards (a bank answering
    /// from a stale replica): a look-up never moves a payment back.
    fn progress(self) -> u8 {
        match self {
            PaymentStatus::Received => 0,
            PaymentStatus::Pending => 1,
            PaymentStatus::Accepted => 2,
            PaymentStatus::SettlementInProcess => 3,
            PaymentStatus::Settled | PaymentStatus::Rejected { .. } | PaymentStatus::Cancelled => 4,
        }
    }

    /// Whether a payment at `self` may be moved to `next` by what a bank answered: never out of
    /// a final status, never backwards, and not to the same status.
    pub fn can_become(self, next: PaymentStatus) -> bool {
        !self.is_final() && next != self && next.progress() >= self.progress()
    }
}

/// A status as a bank reported it: canonical, with the bank's raw code (and reason code) kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankStatus {
    #[serde(flatten)]
    pub status: PaymentStatus,
    /// The bank's own status code (`ACSC`, `AcceptedSettlementCompleted`).
    pub raw: String,
    /// The bank's ISO 20022 reason code, if it gave one (`AM04`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
}

impl BankStatus {
    /// The status of an ISO 20022 code as a bank sent it.
    pub fn from_iso20022(raw: &str, reason_code: Option<&str>) -> Option<BankStatus> {
        Some(BankStatus {
            status: PaymentStatus::from_iso20022(raw, reason_code)?,
            raw: raw.to_owned(),
            reason_code: reason_code.map(str::to_owned),
        })
    }
}
