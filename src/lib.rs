//! bankgate: an open-banking aggregation gateway.
//!
//! Platforms read normalised bank data with consent-bound tokens; every decision is audited.
//! Modules are grouped by layer, bottom up (alphabetical within a group): the domain, the
//! edges (store, egress, adapters), the authorization server and lifecycle, serving, then the
//! binary's glue. See `ARCHITECTURE.md` for the map.

// The domain: the canonical model, errors, keys and the decisions, no I/O and no HTTP types.
pub mod access;
pub mod audit;
pub mod consent;
pub mod crypto;
pub mod error;
pub mod jose;
pub mod model;
pub mod payments;
pub mod policy;
pub mod store_error;

// The edges: persistence, outbound connections and the banks' APIs.
pub mod adapters;
pub mod egress;
pub mod store;

// The authorization server, the consent lifecycle, notifications and the consent broker over
// the domain and the edges.
pub mod broker;
pub mod lifecycle;
pub mod notify;
pub mod oauth;
pub mod subject;

// Serving: the shared state, the HTTP stack, its telemetry, and the start-up of one gateway.
pub mod app;
pub mod gateway;
pub mod http;
pub mod telemetry;

// The binary's glue.
pub mod cli;
pub mod config;
pub mod demo;

pub use error::{Error, Origin};
