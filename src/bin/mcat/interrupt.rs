//! Ctrl-C (SIGINT) and SIGTERM as a flag: the subcommands that run until stopped (listen,
//! send --size, ping, perf) notice it, stop, and print their summary before exiting.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C or SIGTERM came since [`catch`].
pub fn happened() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// From now on Ctrl-C and SIGTERM set the flag rather than end the process.
#[cfg(unix)]
pub fn catch() {
    extern "C" fn interrupted(_signal: libc::c_int) {
        INTERRUPTED.store(true, Ordering::Relaxed);
    }
    on_signals(&[libc::SIGINT, libc::SIGTERM], interrupted);
}

/// Installs `handler` for `signals`; the handlers here only store to an atomic, which is
/// async-signal-safe.
#[cfg(unix)]
fn on_signals(signals: &[libc::c_int], handler: extern "C" fn(libc::c_int)) {
    for &signal in signals {
        // SAFETY: a handler that only stores to an atomic (see above).
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

#[cfg(not(unix))]
pub fn catch() {
    // Ctrl-C ends the process without a summary here: use --count.
}

// SIGHUP: only `mcat relay` (Linux) reloads.
#[cfg(target_os = "linux")]
static RELOAD: AtomicBool = AtomicBool::new(false);

/// Whether SIGHUP came since the last call (or since [`catch_reload`]).
#[cfg(target_os = "linux")]
pub fn reload_requested() -> bool {
    RELOAD.swap(false, Ordering::Relaxed)
}

/// From now on SIGHUP asks for a reload rather than ending the process.
#[cfg(target_os = "linux")]
pub fn catch_reload() {
    extern "C" fn hang_up(_signal: libc::c_int) {
        RELOAD.store(true, Ordering::Relaxed);
    }
    on_signals(&[libc::SIGHUP], hang_up);
}
