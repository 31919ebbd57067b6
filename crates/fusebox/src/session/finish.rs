//! Bookkeeping that ends with a reply token: the token holds a [`FinishOnDrop`], and the
//! registry hears of the end whether the request was answered or its token dropped unanswered.

use std::sync::Arc;

/// A registry of in-flight items, each named by a number (a request's unique, an inode).
pub(crate) trait Finishes: Send + Sync {
    /// Item `key` is over.
    fn finished(&self, key: u64);
}

/// Tells `registry` that `key` is over when dropped.
pub(crate) struct FinishOnDrop<R: Finishes> {
    registry: Arc<R>,
    key: u64,
}

impl<R: Finishes> FinishOnDrop<R> {
    /// A guard for `key` of `registry`.
    pub(crate) fn new(registry: Arc<R>, key: u64) -> Self {
        FinishOnDrop { registry, key }
    }
}

impl<R: Finishes> Drop for FinishOnDrop<R> {
    fn drop(&mut self) {
        self.registry.finished(self.key);
    }
}
