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

static HOOKS: Mutex<Vec<(u64, Hook)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static ENDING: AtomicBool = AtomicBool::new(false);

fn hooks() -> MutexGuard<'static, Vec<(u64, Hook)>> {
    HOOKS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes its closure from the abort list when dropped (the resource was closed normally).
#[derive(Debug)]
#[must_use = "dropping the guard unregisters the closure at once"]
pub struct AbortGuard(u64);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        hooks().retain(|(id, _)| *id != self.0);
    }
}

/// Registers `close` to run if the process is ended by a signal or the watchdog while the
/// returned guard lives. `close` must finish quickly (it is given about a second) and must not
/// log a secret.
pub fn on_abort(close: impl FnOnce() + Send + 'static) -> AbortGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    hooks().push((id, Box::new(close)));
    AbortGuard(id)
}

/// Number of closures registered now.
pub fn pending() -> usize {
    hooks().len()
}

/// Runs every registered closure (each on its own thread, all at once) and waits until they
/// have all returned or `bound` has passed. Returns how many returned in time.
pub fn run_hooks(bound: Duration) -> usize {
    let taken: Vec<(u64, Hook)> = std::mem::take(&mut *hooks());
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

    // One test: the registry is process-wide, so its steps must not run in parallel.
    #[test]
    fn hooks_run_once_within_their_bound_and_guards_unregister() {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let dropped = on_abort(move || {
            r.fetch_add(100, Ordering::SeqCst);
        });
        drop(dropped);
        let r = ran.clone();
        let _kept = on_abort(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let _hung = on_abort(|| std::thread::sleep(Duration::from_secs(3600)));
        assert_eq!(pending(), 2);
        let t = Instant::now();
        let done = run_hooks(Duration::from_millis(300));
        let took = t.elapsed();
        assert_eq!(done, 1);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(pending(), 0);
        // Nothing left: a second abort returns at once.
        assert_eq!(run_hooks(Duration::from_secs(5)), 0);
        assert!(claim_end());
        assert!(!claim_end());
    }
}
