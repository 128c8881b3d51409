//! Route handlers, by audience: platforms' OAuth flow, data, compliance, operators.

pub mod admin;
pub mod banks;
pub mod compliance;
pub mod consents;
pub mod console;
pub mod data;
pub mod input;
pub mod me;
pub mod meta;
pub mod oauth;
pub mod page;
pub mod payee_verifications;
pub mod payees;
pub mod payments;
pub mod purposes;
pub mod subscriptions;
