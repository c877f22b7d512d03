//! Last words when a run is cut short: SIGTERM, SIGINT or the watchdog.
//!
//! A transport that holds something its peer must be told about (an IPMI session takes one of
//! the few session slots of a BMC) registers a closure with [`on_abort`] while it is open; the
//! returned [`AbortGuard`] takes the closure back when the transport closes normally. When the
//! run is cut short, `run.rs` calls [`run_hooks`], which runs every registered closure on a
//! thread of its own and waits for them at most a given bound: a closure that hangs cannot hold
//! the process. The protocol layer knows nothing of what the closures do.
//!
//! [`claim_end`] decides between a normal end and an abort when both race (a signal arriving
//! just as the action finishes): only the first claimant prints its outcome.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

type Hook = Box<dyn FnOnce() + Send>;

/// A list of close-on-abort closures. The process has one ([`on_abort`], [`run_hooks`]).
#[derive(Default)]
pub struct Registry {
    hooks: Mutex<Vec<(u64, Hook)>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("pending", &self.pending())
            .finish()
    }
}

impl Registry {
    /// An empty list.
    pub const fn new() -> Registry {
        Registry {
            hooks: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Hook)>> {
        self.hooks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `close`; it stays until [`Registry::remove`] or [`Registry::run`]. Returns its id.
    pub fn add(&self, close: impl FnOnce() + Send + 'static) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, Box::new(close)));
        id
    }

    /// Removes the closure `id` (nothing when it already ran or was removed).
    pub fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// Number of closures registered now.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Runs every registered closure (each on its own thread, all at once) and waits until
    /// they have all returned or `bound` has passed. Returns how many returned in time.
    pub fn run(&self, bound: Duration) -> usize {
        let taken: Vec<(u64, Hook)> = std::mem::take(&mut *self.lock());
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut running = 0usize;
        for (_, hook) in taken {
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name("abort-hook".into())
                .spawn(move || {
                    hook();
                    let _ = tx.send(());
                });
            if spawned.is_ok() {
                running += 1;
            }
        }
        drop(tx);
        let mut done = 0usize;
        while done < running {
            let left = bound.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(()) => done += 1,
                Err(_) => break,
            }
        }
        done
    }
}

static PROCESS: Registry = Registry::new();
static ENDING: AtomicBool = AtomicBool::new(false);

/// Removes its closure from the process's abort list when dropped (the resource was closed
/// normally).
#[derive(Debug)]
#[must_use = "dropping the guard unregisters the closure at once"]
pub struct AbortGuard(u64);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        PROCESS.remove(self.0);
    }
}

/// Registers `close` to run if the process is ended by a signal or the watchdog while the
/// returned guard lives. `close` must finish quickly (it is given about a second) and must not
/// log a secret.
pub fn on_abort(close: impl FnOnce() + Send + 'static) -> AbortGuard {
    AbortGuard(PROCESS.add(close))
}

/// Runs the process's close-on-abort closures within `bound` (see [`Registry::run`]).
pub fn run_hooks(bound: Duration) -> usize {
    PROCESS.run(bound)
}

/// Claims the end of the run: true for the first caller only (the normal end or an abort),
/// false for every later one, which must then neither print an outcome nor exit on its own.
pub fn claim_end() -> bool {
    !ENDING.swap(true, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    // A registry of its own: the process's list may hold other tests' IPMI sessions.
    #[test]
    fn hooks_run_once_within_their_bound_and_removed_ones_never() {
        let reg = Registry::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let removed = reg.add(move || {
            r.fetch_add(100, Ordering::SeqCst);
        });
        reg.remove(removed);
        let r = ran.clone();
        let _kept = reg.add(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let _hung = reg.add(|| std::thread::sleep(Duration::from_secs(3600)));
        assert_eq!(reg.pending(), 2);
        let t = Instant::now();
        let done = reg.run(Duration::from_millis(300));
        let took = t.elapsed();
        assert_eq!(done, 1);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(reg.pending(), 0);
        // Nothing left: a second run returns at once.
        let t = Instant::now();
        assert_eq!(reg.run(Duration::from_secs(5)), 0);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn guard_unregisters_from_the_process_list() {
        let g = on_abort(|| {});
        let id = g.0;
        assert!(PROCESS.lock().iter().any(|(i, _)| *i == id));
        drop(g);
        assert!(!PROCESS.lock().iter().any(|(i, _)| *i == id));
    }
}
