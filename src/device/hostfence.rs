//! A host that did not answer: what its VMs' state is worth, and host-level fencing through
//! its BMC (`host_fence=bmc` of fence_esxi and fence_kvmguest).
//!
//! An agent that looks for a VM on several hosts cannot call it off while one host is silent:
//! the VM may run there. The host's BMC settles it:
//! - its chassis reads **off**: nothing runs on it, its VMs count as off;
//! - with `host_fence=bmc`, during a fencing action (off, reboot), the host is powered off
//!   through its BMC (Chassis Control power down, the session code fence_bmc uses) and the
//!   chassis is **read back** off; only then do its VMs count as off;
//! - anything else (no BMC known, the BMC unreachable, a power-off not accepted, the chassis
//!   still on after the read-backs) leaves the host unknown: the caller's answer is an error,
//!   never "off".
//!
//! Generic over the BMC ([`BmcOps`], by host name: [`crate::evacuate::backend::IpmiBmcs`] for
//! the inventory's BMCs), so the logic is unit-tested with a fake; several silent hosts are
//! settled at once ([`settle_all`]), each BMC step bounded by the BMC's own timeouts.

use std::time::Duration;

use crate::evacuate::backend::BmcOps;
use crate::protocol::agent::PowerState;

/// The `host_fence` option's values.
pub const CHOICES: &[&str] = &["none", "bmc"];

/// What to do with a host that does not answer over SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostFence {
    /// Nothing: its VMs' state is unknown unless its chassis already reads off.
    #[default]
    None,
    /// Power it off through its BMC and read the chassis back off (fencing actions only).
    Bmc,
}

impl HostFence {
    /// Parses the option value (`none`, `bmc`; absent = `none`).
    pub fn parse(v: Option<&str>) -> Result<HostFence, String> {
        match v.map(str::trim) {
            None | Some("") => Ok(HostFence::None),
            Some(s) if s.eq_ignore_ascii_case("none") => Ok(HostFence::None),
            Some(s) if s.eq_ignore_ascii_case("bmc") => Ok(HostFence::Bmc),
            Some(s) => Err(format!(
                "host_fence: '{}' is not one of none, bmc",
                crate::protocol::error::excerpt(s)
            )),
        }
    }
}

/// How long a power-off is read back: `reads` status reads, `poll` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBack {
    /// Status reads after the power-off request (at least one).
    pub reads: u32,
    /// Pause between two reads.
    pub poll: Duration,
}

impl ReadBack {
    /// Reads every `poll` for about `within` (at least one read).
    pub fn within(within: Duration, poll: Duration) -> ReadBack {
        let poll = poll.max(Duration::from_millis(100));
        let n = within.as_millis() / poll.as_millis().max(1);
        ReadBack {
            reads: u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 600),
            poll,
        }
    }
}

/// A silent host whose chassis was read off: how (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOff {
    /// The host.
    pub host: String,
    /// True when this call powered it off (false: it already read off).
    pub powered_off: bool,
    /// One line for the log: which host, why, what was done and read.
    pub how: String,
}

/// Settles one host that did not answer (`silent_why` says how). `bmc`: the host's BMC, if
/// one is known. `power_off`: power it off through the BMC when its chassis does not read off
/// (`host_fence=bmc` in a fencing action); otherwise the BMC is only read. `Ok` only when the
/// chassis was read off; `Err(why)` otherwise (the host's VMs are then of unknown state).
pub fn settle(
    bmc: Option<&dyn BmcOps>,
    host: &str,
    silent_why: &str,
    power_off: bool,
    rb: ReadBack,
    sleep: &(dyn Fn(Duration) + Sync),
) -> Result<HostOff, String> {
    let Some(bmc) = bmc else {
        return Err(format!(
            "host {host} did not answer ({silent_why}) and no BMC is known for it (an \
             `inventory` with its [[host]] bmc_address settles it): the state of its VMs is \
             unknown"
        ));
    };
    let first = bmc.status(host);
    if let Ok(PowerState::Off) = first {
        return Ok(HostOff {
            host: host.to_owned(),
            powered_off: false,
            how: format!(
                "host {host} did not answer ({silent_why}); its BMC reads the chassis off: \
                 its VMs count as off"
            ),
        });
    }
    if !power_off {
        return Err(match first {
            Ok(_) => format!(
                "host {host} did not answer ({silent_why}) and its BMC reads the chassis on: \
                 its VMs may still run (host_fence=bmc would power it off)"
            ),
            Err(e) => format!(
                "host {host} did not answer ({silent_why}) and its BMC could not be read \
                 ({e}): the state of its VMs is unknown"
            ),
        });
    }
    match power_off_confirmed(bmc, host, rb, sleep, &|| false) {
        Ok(()) => Ok(HostOff {
            host: host.to_owned(),
            powered_off: true,
            how: format!(
                "host {host} did not answer over SSH ({silent_why}): powered off through its \
                 BMC (host_fence=bmc) and the chassis read back off; its VMs count as off"
            ),
        }),
        Err(why) => Err(format!(
            "host {host} did not answer ({silent_why}) and its power-off through the BMC is \
             not confirmed ({why}): the state of its VMs is unknown"
        )),
    }
}

/// Powers `host` off through its BMC and reads the chassis back until it reads off: `Ok` only
/// then. Up to `rb.reads` reads, `rb.poll` apart; a refused power-off gets one read (the
/// chassis may be off already); `stop()` ends the read-back early. `Err` says what was last
/// seen. The one BMC fence of the project: the evacuation engine and `host_fence=bmc` use it.
pub fn power_off_confirmed(
    bmc: &dyn BmcOps,
    host: &str,
    rb: ReadBack,
    sleep: &(dyn Fn(Duration) + Sync),
    stop: &dyn Fn() -> bool,
) -> Result<(), String> {
    let sent = bmc.power_off(host);
    let refused = match &sent {
        Ok(()) => String::new(),
        Err(e) => format!("power-off not accepted: {e}; "),
    };
    let mut last = String::from("not read back yet");
    for i in 0..rb.reads.max(1) {
        if i > 0 {
            if stop() {
                last = format!("{last}; stopped before the read-back ended");
                break;
            }
            sleep(rb.poll);
        }
        match bmc.status(host) {
            Ok(PowerState::Off) => return Ok(()),
            Ok(PowerState::On) => last = "the BMC still reads the chassis on".into(),
            Err(e) => last = format!("chassis status not read: {e}"),
        }
        if sent.is_err() {
            break;
        }
    }
    Err(format!("{refused}{last}"))
}

/// [`settle`] for several hosts at once (`(host, silent_why)`), each with the BMC `bmc_of`
/// gives for it; answers in the order given.
pub fn settle_all<'a>(
    silent: &[(String, String)],
    bmc_of: &(dyn Fn(&str) -> Option<&'a dyn BmcOps> + Sync),
    power_off: bool,
    rb: ReadBack,
    sleep: &(dyn Fn(Duration) + Sync),
) -> Vec<(String, Result<HostOff, String>)> {
    std::thread::scope(|s| {
        let workers: Vec<_> = silent
            .iter()
            .map(|(host, why)| {
                (
                    host.clone(),
                    s.spawn(move || settle(bmc_of(host), host, why, power_off, rb, sleep)),
                )
            })
            .collect();
        workers
            .into_iter()
            .map(|(host, w)| {
                let r = w
                    .join()
                    .unwrap_or_else(|_| Err(format!("host {host}: its BMC check ended early")));
                (host, r)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;
    use crate::evacuate::backend::{ChassisPower, OpError};
    use std::sync::Mutex;

    /// A BMC whose status answers are scripted; `power_off` is recorded.
    struct Fake {
        reads: Mutex<Vec<Result<ChassisPower, OpError>>>,
        off_sent: Mutex<u32>,
        refuse_off: bool,
    }

    impl Fake {
        fn new(reads: Vec<Result<ChassisPower, OpError>>) -> Fake {
            Fake {
                reads: Mutex::new(reads),
                off_sent: Mutex::new(0),
                refuse_off: false,
            }
        }
    }

    impl BmcOps for Fake {
        fn status(&self, _: &str) -> Result<ChassisPower, OpError> {
            let mut r = self.reads.lock().unwrap();
            if r.is_empty() {
                Err(OpError::Unreachable("no more answers".into()))
            } else {
                r.remove(0)
            }
        }
        fn power_off(&self, _: &str) -> Result<(), OpError> {
            *self.off_sent.lock().unwrap() += 1;
            if self.refuse_off {
                Err(OpError::Unreachable("timed out".into()))
            } else {
                Ok(())
            }
        }
    }

    const RB: ReadBack = ReadBack {
        reads: 3,
        poll: Duration::from_millis(1),
    };

    fn no_sleep(_: Duration) {}

    #[test]
    fn parse_values() {
        assert_eq!(HostFence::parse(None), Ok(HostFence::None));
        assert_eq!(HostFence::parse(Some("BMC")), Ok(HostFence::Bmc));
        assert_eq!(HostFence::parse(Some("none")), Ok(HostFence::None));
        assert!(HostFence::parse(Some("ipmi")).is_err());
    }

    #[test]
    fn read_back_bounds() {
        let rb = ReadBack::within(Duration::from_secs(20), Duration::from_secs(1));
        assert_eq!(rb.reads, 20);
        let rb = ReadBack::within(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(rb.reads, 1);
    }

    #[test]
    fn no_bmc_is_never_off() {
        let e = settle(None, "h1", "refused", true, RB, &no_sleep).unwrap_err();
        assert!(e.contains("h1") && e.contains("no BMC"), "{e}");
    }

    #[test]
    fn chassis_already_off_counts_without_power_off() {
        let f = Fake::new(vec![Ok(PowerState::Off)]);
        let r = settle(Some(&f), "h1", "refused", false, RB, &no_sleep).unwrap();
        assert!(!r.powered_off);
        assert_eq!(*f.off_sent.lock().unwrap(), 0);
    }

    #[test]
    fn read_only_never_powers_off() {
        let f = Fake::new(vec![Ok(PowerState::On)]);
        let e = settle(Some(&f), "h1", "refused", false, RB, &no_sleep).unwrap_err();
        assert!(e.contains("reads the chassis on"), "{e}");
        assert_eq!(*f.off_sent.lock().unwrap(), 0);
        let f = Fake::new(vec![Err(OpError::Unreachable("no answer".into()))]);
        let e = settle(Some(&f), "h1", "refused", false, RB, &no_sleep).unwrap_err();
        assert!(e.contains("could not be read"), "{e}");
    }

    #[test]
    fn power_off_then_read_back_off() {
        let f = Fake::new(vec![
            Ok(PowerState::On),
            Ok(PowerState::On),
            Ok(PowerState::Off),
        ]);
        let r = settle(Some(&f), "h1", "refused", true, RB, &no_sleep).unwrap();
        assert!(r.powered_off);
        assert!(r.how.contains("h1") && r.how.contains("read back off"));
        assert_eq!(*f.off_sent.lock().unwrap(), 1);
    }

    #[test]
    fn chassis_that_stays_on_is_an_error() {
        let f = Fake::new(vec![Ok(PowerState::On); 10]);
        let e = settle(Some(&f), "h1", "refused", true, RB, &no_sleep).unwrap_err();
        assert!(e.contains("still reads the chassis on"), "{e}");
        // 1 read before, 3 read-backs.
        assert_eq!(f.reads.lock().unwrap().len(), 6);
    }

    #[test]
    fn unreachable_bmc_is_an_error_and_stops_early() {
        let mut f = Fake::new(vec![
            Err(OpError::Unreachable("timed out".into())),
            Err(OpError::Unreachable("timed out".into())),
            Ok(PowerState::Off),
        ]);
        f.refuse_off = true;
        let e = settle(Some(&f), "h1", "refused", true, RB, &no_sleep).unwrap_err();
        assert!(e.contains("not accepted"), "{e}");
        // A refused power-off is read once, not for the whole read-back.
        assert_eq!(f.reads.lock().unwrap().len(), 1);
    }

    #[test]
    fn several_hosts_each_settled() {
        let off = Fake::new(vec![Ok(PowerState::Off)]);
        let on = Fake::new(vec![Ok(PowerState::On); 5]);
        let bmc_of = |h: &str| -> Option<&dyn BmcOps> {
            match h {
                "a" => Some(&off),
                "b" => Some(&on),
                _ => None,
            }
        };
        let silent = vec![
            ("a".to_owned(), "refused".to_owned()),
            ("b".to_owned(), "timed out".to_owned()),
            ("c".to_owned(), "refused".to_owned()),
        ];
        let got = settle_all(&silent, &bmc_of, false, RB, &no_sleep);
        assert_eq!(got.len(), 3);
        assert!(got[0].1.is_ok());
        assert!(got[1].1.is_err());
        assert!(got[2].1.as_ref().unwrap_err().contains("no BMC"));
    }
}
