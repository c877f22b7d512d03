//! Asking several hosts at once: one thread per host, every answer collected, none invented.
//!
//! Generic over the host (anything that knows its name) and over "ask one host" (a closure),
//! so that fence_kvmguest, the evacuation engine or an agent fencing across ESXi hosts share
//! it. The fan-out takes as long as the slowest host, never the sum; it adds no timeout of its
//! own, so each `ask` must be bounded by itself (an SSH command is, by its command timeout).
//!
//! The one rule across hosts: a host that gave no answer (its worker ended without one, or no
//! host has that name) gets the caller's `missing` answer, which must be an error: silence is
//! never an absence, so never "off".

/// A host that answers to a name (a cfname, an inventory host name).
pub trait Named {
    /// The host's name, as callers ask for it.
    fn name(&self) -> &str;
}

/// Asks the hosts named in `names` at once, each with `ask`, and waits for every one.
/// Answers come back in the order of `names`, each with its host's name; a name no host
/// carries, or whose worker ended without an answer, gets `missing(name)`. A host named
/// twice is asked once.
pub fn ask_named<H, R, F, M>(
    hosts: &mut [H],
    names: &[String],
    ask: F,
    missing: M,
) -> Vec<(String, R)>
where
    H: Named + Send,
    R: Send,
    F: Fn(&mut H) -> R + Sync,
    M: Fn(&str) -> R,
{
    let ask = &ask;
    let mut got: Vec<(String, R)> = Vec::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .iter_mut()
            .filter(|h| names.iter().any(|n| n == h.name()))
            .map(|h| {
                let name = h.name().to_owned();
                (name, scope.spawn(move || ask(h)))
            })
            .collect();
        for (name, worker) in workers {
            if let Ok(r) = worker.join() {
                got.push((name, r));
            }
        }
    });
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if out.iter().any(|(m, _)| m == n) {
            continue;
        }
        let r = match got.iter().position(|(m, _)| m == n) {
            Some(i) => got.swap_remove(i).1,
            None => missing(n),
        };
        out.push((n.clone(), r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    struct Fake {
        name: String,
        asked: u32,
    }

    impl Named for Fake {
        fn name(&self) -> &str {
            &self.name
        }
    }

    fn hosts(names: &[&str]) -> Vec<Fake> {
        names
            .iter()
            .map(|n| Fake {
                name: (*n).to_owned(),
                asked: 0,
            })
            .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn answers_follow_the_names_and_silence_is_the_missing_answer() {
        let mut hs = hosts(&["a", "b", "c"]);
        let got = ask_named(
            &mut hs,
            &names(&["c", "ghost", "a", "c"]),
            |h| {
                h.asked += 1;
                Ok::<String, String>(format!("{} answered", h.name))
            },
            |n| Err(format!("{n}: no answer")),
        );
        assert_eq!(
            got,
            vec![
                ("c".to_owned(), Ok("c answered".to_owned())),
                ("ghost".to_owned(), Err("ghost: no answer".to_owned())),
                ("a".to_owned(), Ok("a answered".to_owned())),
            ]
        );
        // Only the named hosts were asked, each once.
        assert_eq!(
            hs.iter().map(|h| h.asked).collect::<Vec<_>>(),
            vec![1, 0, 1]
        );
    }

    #[test]
    fn hosts_are_asked_at_once() {
        let mut hs = hosts(&["a", "b", "c", "d"]);
        let start = Instant::now();
        let got = ask_named(
            &mut hs,
            &names(&["a", "b", "c", "d"]),
            |_| std::thread::sleep(Duration::from_millis(300)),
            |_| (),
        );
        assert_eq!(got.len(), 4);
        assert!(
            start.elapsed() < Duration::from_millis(1100),
            "{:?}",
            start.elapsed()
        );
    }
}
