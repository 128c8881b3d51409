//! The policy set in force, swappable at run time without locks on the request path.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Policy, PolicySet};

/// A shared handle on the policy set in force. Requests read it lock-free
/// ([`Live::current`], [`Live::get`]); a reload replaces the whole set atomically
/// ([`Live::replace`]), so a request sees either the old set or the new one, never a mix.
#[derive(Debug, Clone)]
pub struct Live {
    current: Arc<ArcSwap<PolicySet>>,
    /// Serialises reloads (load, audit, swap); never taken by requests.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

impl Live {
    /// A handle whose set in force is `set`.
    pub fn new(set: PolicySet) -> Live {
        Live {
            current: Arc::new(ArcSwap::from_pointee(set)),
            reloading: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// The policy of a purpose in the set in force now.
    pub fn get(&self, purpose: &str) -> Option<Arc<Policy>> {
        self.current.load().get(purpose)
    }

    /// Puts `set` in force; returns the set it replaces.
    pub fn replace(&self, set: PolicySet) -> Arc<PolicySet> {
        self.current.swap(Arc::new(set))
    }

    /// Held for the whole of one reload, so that two reloads do not interleave.
    pub async fn reload_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
    }
}
