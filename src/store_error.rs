//! The errors of every storage trait, below the domains that define those traits: a domain
//! module names its store's failures without importing the store.

/// Errors of a store, with SQLSTATEs turned into kinds callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool is exhausted: retry later.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A unique key already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A stored value could not be decoded (a bug or a tampered row).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("store query failed")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An internal invariant did not hold.
    #[error("store invariant violated: {0}")]
    Invariant(&'static str),
}
