//! Deterministic synthetic customers shared by every sandbox bank.
