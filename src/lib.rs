//! bankgate: an open-banking aggregation gateway.
//!
//! Platforms read normalised bank data with consent-bound tokens; every decision is audited.
//! Modules are listed in reading order: the domain first, then the edges (store, adapters,
//! HTTP), then the binary's glue. See `ARCHITECTURE.md` for the map.

pub mod access;
pub mod adapters;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod demo;
pub mod egress;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod model;
pub mod oauth;
pub mod payments;
pub mod policy;
pub mod store;
pub mod telemetry;

pub use error::{Error, Origin};
