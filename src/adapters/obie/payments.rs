//! UK OBIE payment initiation (Read/Write API 3.1 and 4.0, domestic payments): the wire types
//! and their canonical reading ([`wire`]), tested against every PIS example in the shared
//! fixtures. The flow they serve: `POST /domestic-payment-consents` (client credentials) →
//! the user authorises the consent at the bank → `POST /domestic-payments` with the consent's
//! token, `x-idempotency-key` and a detached JWS `x-jws-signature` → `GET
//! /domestic-payments/{id}`. The profile does not make these calls yet
//! ([`crate::adapters::Profile::payments`] is `None` for OBIE).

pub mod wire;

#[cfg(test)]
mod tests;
