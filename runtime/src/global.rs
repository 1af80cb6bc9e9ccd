//! The process-wide current client: the one the attribute and the free
//! functions ([`command`](crate::command), [`disable`](crate::disable),
//! [`flush`](crate::flush)) talk to. [`Builder::start`](crate::Builder::start)
//! installs it; dropping its guard removes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::queue::Shared;

/// True while an enabled client is installed: the attribute's whole cost
/// when telemetry is off is loading this.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by [`disable`]: telemetry stays off for the rest of the process,
/// including clients started later.
static DISABLED: AtomicBool = AtomicBool::new(false);
static CURRENT: RwLock<Option<Arc<Shared>>> = RwLock::new(None);

#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The installed client, if telemetry is on.
pub(crate) fn current() -> Option<Arc<Shared>> {
    CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

pub(crate) fn install(shared: &Arc<Shared>) {
    let mut current = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
    *current = Some(Arc::clone(shared));
    ACTIVE.store(true, Ordering::Relaxed);
}

/// Removes `shared` if it is still the installed client.
pub(crate) fn uninstall(shared: &Arc<Shared>) {
    let mut current = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, shared)) {
        ACTIVE.store(false, Ordering::Relaxed);
        *current = None;
    }
}

/// True once [`disable`] was called in this process.
pub(crate) fn is_disabled() -> bool {
    DISABLED.load(Ordering::SeqCst)
}

/// Turns the installed client off and removes it, and keeps every client
/// started later off too.
pub(crate) fn disable() {
    DISABLED.store(true, Ordering::SeqCst);
    let taken = {
        let mut current = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
        ACTIVE.store(false, Ordering::Relaxed);
        current.take()
    };
    if let Some(shared) = taken {
        shared.disable();
    }
}
