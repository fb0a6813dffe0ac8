//! Locking shared plain data. A leaf of its own: every layer locks, from the socket's frames
//! (`wire`) to the core's state, so it cannot live with any one of them without an import cycle.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks plain data; a poisoned lock means another thread panicked mid-update, and the data
/// is still the best there is.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
