//! oauth (in progress).
