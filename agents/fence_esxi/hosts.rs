//! fence_esxi across hosts: `inventory` (the vm-evacuate TOML: its `[[host]]`, `[ssh]` and
//! `[bmc]` entries) or `hosts` (`name=addr[:port],…` with the device's login options).
//!
//! The plug is a VM name (never a vmid: vmids are per host). Every host is asked at once
//! ([`fanout::ask_named`]); per host the VM is running (on or suspended), registered and
//! powered off, absent, or the host is silent (no SSH session within the login timeout:
//! connection refused, timed out, unreachable) or failed (any other error: a login refused,
//! a host key that does not match, unknown output; never taken for silence).
//!
//! The verdict:
//! - running on some host: ON (on two hosts at once: ON, and an error line naming them);
//! - otherwise any failed host, or a silent host not settled by its BMC (see
//!   [`hostfence`]): an error;
//! - otherwise OFF when it is registered (off) on an answering host or some silent host's
//!   chassis read off (its VMs count as off), else not found.
//!
//! A silent host is settled through its BMC (inventory only): read-only (its chassis already
//! reads off) for status, on, list and monitor; powered off and read back with
//! `host_fence=bmc` during off and reboot. A host settled off is not asked again in the same
//! run. Off powers the VM off on every host where it runs (the engine's read-back then asks
//! every host again), on powers it on on the one answering host where it is registered.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use fencekit::device::fanout::{self, Named};
use fencekit::device::hostfence::{self, HostFence, ReadBack};
use fencekit::device::kvmconf::{self, HostAddr};
use fencekit::device::vimcmd::VmPower;
use fencekit::evacuate::backend::{self, BmcOps, IpmiBmcs};
use fencekit::evacuate::inventory::{self, Inventory, ResolvedSsh};
use fencekit::protocol::action::Action;
use fencekit::protocol::log;
use fencekit::protocol::options;
use fencekit::transport::ssh::{LazySession, SshConfig, SshError};
use fencekit::{FenceError, FenceResult, Options, Outlet, PowerState};

use super::{Esxi, HOSTS, HOST_FENCE, INVENTORY, IP, USERNAME};

/// True when the device covers several hosts (`inventory` or `hosts` given).
pub fn multi(opts: &Options) -> bool {
    opts.is_given(&INVENTORY) || opts.is_given(&HOSTS)
}

/// Option checks (no device contact): the single-host requirements without `inventory` and
/// `hosts`, and the multi-host ones with them.
pub fn validate(opts: &Options) -> Vec<String> {
    let mut out = Vec::new();
    let inv = opts.given(&INVENTORY);
    let hosts = opts.given(&HOSTS);
    let has_pw = opts.password().is_some()
        || opts.given(&options::PASSWORD_SCRIPT).is_some()
        || opts.given(&options::IDENTITY_FILE).is_some();
    if inv.is_none() && opts.username().is_none() {
        out.push("You have to set login name".to_string());
    }
    if inv.is_none() && hosts.is_none() && opts.ip().is_none() {
        out.push("You have to enter fence address".to_string());
    }
    if inv.is_none() && !has_pw {
        out.push("You have to enter password, password script or identity file".to_string());
    }
    if inv.is_some() && hosts.is_some() {
        out.push("inventory and hosts exclude each other: give one".to_string());
    }
    if multi(opts) && opts.is_given(&IP) {
        out.push(
            "ip names one host; with inventory or hosts the VM is looked for on every host: \
             leave ip out"
                .to_string(),
        );
    }
    if multi(opts)
        && opts
            .get(&options::METHOD)
            .is_some_and(|m| m.eq_ignore_ascii_case("cycle"))
    {
        out.push("method=cycle works with ip (one host) only".to_string());
    }
    match HostFence::parse(opts.get(&HOST_FENCE)) {
        Ok(HostFence::Bmc) if inv.is_none() => out
            .push("host_fence=bmc needs inventory (the hosts' BMCs are read from it)".to_string()),
        Ok(_) => {}
        Err(e) => out.push(e),
    }
    if let Some(path) = inv {
        match inventory::load(Path::new(path)) {
            Ok(i) if i.hosts.is_empty() => out.push(format!("{path}: no [[host]]")),
            Ok(_) => {}
            Err(e) => out.extend(e.to_string().lines().map(str::to_owned)),
        }
    }
    if let Some(v) = hosts {
        if let Err(errs) = kvmconf::parse_hosts(v) {
            out.extend(errs);
        }
    }
    out
}

/// What one host said about the VM.
#[derive(Debug, Clone)]
enum Seen {
    /// Registered there, in this state.
    Power(VmPower),
    /// Not registered there.
    Absent,
    /// No SSH session within the login timeout (why).
    Silent(String),
    /// Any other failure.
    Failed(FenceError),
    /// The host's chassis was read off in this run: its VMs count as off.
    Down,
}

/// One host: its SSH settings, its session once opened, and whether its chassis read off.
struct Slot {
    name: String,
    cfg: Result<SshConfig, FenceError>,
    esxi: Option<Esxi>,
    down: bool,
}

impl Named for Slot {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Slot {
    /// The host's session, opened now if needed; connect failures are sorted into silent
    /// (refused, timed out, unreachable) and failed (everything else).
    fn session(&mut self, opts: &Options) -> Result<&mut Esxi, Seen> {
        if self.esxi.is_none() {
            let cfg = self.cfg.clone().map_err(Seen::Failed)?;
            match LazySession::connected(cfg) {
                Ok(s) => {
                    self.esxi = Some(Esxi::new(s, opts, true));
                }
                Err(e @ (SshError::Connect(_) | SshError::Timeout(_))) => {
                    return Err(Seen::Silent(e.to_string()))
                }
                Err(e) => return Err(Seen::Failed(e.into())),
            }
        }
        self.esxi
            .as_mut()
            .ok_or_else(|| Seen::Failed(FenceError::Device("no session".into())))
    }

    /// Runs `f` on the host's session; a transport error drops the session (the next call
    /// connects again and sorts the host anew).
    fn with<T>(
        &mut self,
        opts: &Options,
        f: impl FnOnce(&mut Esxi) -> FenceResult<T>,
    ) -> Result<T, Seen> {
        if self.down {
            return Err(Seen::Down);
        }
        let e = self.session(opts)?;
        match f(e) {
            Ok(v) => Ok(v),
            Err(err) => {
                if err.is_transport() {
                    self.esxi = None;
                }
                Err(Seen::Failed(err))
            }
        }
    }

    fn ask(&mut self, opts: &Options, plug: &str) -> Seen {
        match self.with(opts, |e| e.read_state(plug)) {
            Ok(p) => Seen::Power(p),
            Err(Seen::Failed(FenceError::PlugNotFound(_))) => Seen::Absent,
            Err(s) => s,
        }
    }
}

/// The device across hosts.
pub struct Multi {
    opts: Options,
    hosts: Vec<Slot>,
    names: Vec<String>,
    bmcs: Option<IpmiBmcs>,
    host_fence: HostFence,
    /// The last survey of each plug, for the power command that follows the status read
    /// (taken once; the read-back asks every host again).
    last: HashMap<String, Vec<(String, Seen)>>,
}

/// An inventory host's SSH settings as a session configuration; the device's
/// `login_timeout`/`shell_timeout`, when given, win over the inventory's.
fn inventory_ssh(r: &ResolvedSsh, opts: &Options) -> FenceResult<SshConfig> {
    let login = if opts.is_given(&options::LOGIN_TIMEOUT) {
        opts.login_timeout()
    } else {
        Duration::from_secs(r.login_timeout_s)
    }
    .max(Duration::from_millis(100));
    let shell = if opts.is_given(&options::SHELL_TIMEOUT) {
        opts.shell_timeout()
    } else {
        Duration::from_secs(r.shell_timeout_s)
    }
    .max(Duration::from_millis(100));
    backend::ssh_config(r, login, shell).map_err(FenceError::Usage)
}

/// A `hosts` entry as a session configuration (the device's options, its address).
fn listed_ssh(a: &HostAddr, opts: &Options) -> FenceResult<SshConfig> {
    let mut o = opts.clone();
    o.set(&IP, a.host.clone());
    if let Some(p) = a.port {
        o.set(&options::IPPORT, p.to_string());
    }
    if let Some(u) = &a.user {
        o.set(&USERNAME, u.clone());
    }
    SshConfig::from_options(&o)
}

fn fencing(opts: &Options) -> bool {
    matches!(opts.action(), Some(Action::Off | Action::Reboot))
}

impl Multi {
    pub fn new(opts: &Options) -> FenceResult<Multi> {
        let host_fence = HostFence::parse(opts.get(&HOST_FENCE)).map_err(FenceError::Usage)?;
        let (hosts, bmcs) = if let Some(path) = opts.get(&INVENTORY) {
            let inv: Inventory = inventory::load(Path::new(path))
                .map_err(|e| FenceError::Usage(e.to_string().replace('\n', "; ")))?;
            let hosts: Vec<Slot> = inv
                .hosts
                .iter()
                .map(|h| Slot {
                    name: h.name.clone(),
                    cfg: inventory_ssh(&inv.ssh_for(h), opts),
                    esxi: None,
                    down: false,
                })
                .collect();
            (hosts, Some(IpmiBmcs::new(&inv)))
        } else {
            let addrs = kvmconf::parse_hosts(opts.get(&HOSTS).unwrap_or(""))
                .map_err(|e| FenceError::Usage(e.join("; ")))?;
            let hosts: Vec<Slot> = addrs
                .iter()
                .map(|a| Slot {
                    name: a.cfname.clone(),
                    cfg: listed_ssh(a, opts),
                    esxi: None,
                    down: false,
                })
                .collect();
            (hosts, None)
        };
        let names = hosts.iter().map(|h: &Slot| h.name.clone()).collect();
        Ok(Multi {
            opts: opts.clone(),
            hosts,
            names,
            bmcs,
            host_fence,
            last: HashMap::new(),
        })
    }

    /// Settles the silent hosts of `seen` through their BMCs (powering them off with
    /// `host_fence=bmc` during off/reboot): a host read off becomes `Down`, one not settled
    /// `Failed` with the reason.
    fn settle(&mut self, seen: &mut [(String, Seen)], power_off: bool) {
        let silent: Vec<(String, String)> = seen
            .iter()
            .filter_map(|(h, s)| match s {
                Seen::Silent(why) => Some((h.clone(), why.clone())),
                _ => None,
            })
            .collect();
        if silent.is_empty() {
            return;
        }
        let bmcs = self.bmcs.as_ref();
        let bmc_of = |_: &str| bmcs.map(|b| b as &dyn BmcOps);
        let rb = ReadBack::within(
            self.opts.power_timeout(),
            self.opts.secs(&options::STONITH_STATUS_SLEEP),
        );
        let got = hostfence::settle_all(&silent, &bmc_of, power_off, rb, &std::thread::sleep);
        for (host, r) in got {
            let new = match r {
                Ok(off) => {
                    if off.powered_off {
                        log::error(&off.how);
                    } else {
                        log::warn(&off.how);
                    }
                    if let Some(slot) = self.hosts.iter_mut().find(|s| s.name == host) {
                        slot.down = true;
                        slot.esxi = None;
                    }
                    Seen::Down
                }
                Err(why) => Seen::Failed(FenceError::Status(why)),
            };
            if let Some((_, s)) = seen.iter_mut().find(|(h, _)| *h == host) {
                *s = new;
            }
        }
    }

    /// Asks every host about `plug`, silent hosts settled.
    fn survey(&mut self, plug: &str) -> Vec<(String, Seen)> {
        let opts = &self.opts;
        let mut seen = fanout::ask_named(
            &mut self.hosts,
            &self.names,
            |h| h.ask(opts, plug),
            |n| Seen::Failed(FenceError::Status(format!("host {n} gave no answer"))),
        );
        let power_off = self.host_fence == HostFence::Bmc && fencing(&self.opts);
        self.settle(&mut seen, power_off);
        seen
    }

    pub fn power_status(&mut self, plug: &str) -> FenceResult<PowerState> {
        let seen = self.survey(plug);
        let verdict = verdict(plug, &seen, self.opts.action());
        self.last.insert(plug.to_owned(), seen);
        verdict
    }

    /// The hosts where the last survey found the VM in a state `want` selects.
    fn where_(&mut self, plug: &str, want: fn(&Seen) -> bool) -> Vec<String> {
        let seen = match self.last.remove(plug) {
            Some(s) => s,
            None => self.survey(plug),
        };
        seen.iter()
            .filter(|(_, s)| want(s))
            .map(|(h, _)| h.clone())
            .collect()
    }

    pub fn set_power(&mut self, plug: &str, state: PowerState) -> FenceResult<()> {
        let targets = match state {
            PowerState::Off => self.where_(plug, |s| {
                matches!(s, Seen::Power(VmPower::On | VmPower::Suspended))
            }),
            PowerState::On => {
                let hosts = self.where_(plug, |s| matches!(s, Seen::Power(VmPower::Off)));
                match hosts.as_slice() {
                    [_] => hosts,
                    // Not found (the engine gives up at once instead of polling for
                    // power_timeout): a reboot's on phase after a host fence, where the
                    // evacuation restarts the VM elsewhere.
                    [] => {
                        return Err(FenceError::PlugNotFound(format!(
                            "VM '{plug}' is not registered (powered off) on any host that \
                             answered: nothing to power on"
                        )))
                    }
                    _ => return Err(several(plug, &hosts)),
                }
            }
        };
        if targets.is_empty() {
            return Ok(());
        }
        let opts = &self.opts;
        let got = fanout::ask_named(
            &mut self.hosts,
            &targets,
            |h| h.with(opts, |e| e.set_power(plug, state)),
            |n| Err(Seen::Failed(FenceError::Device(format!("no host {n}")))),
        );
        let mut errs = Vec::new();
        for (h, r) in got {
            match r {
                Ok(()) => log::debug(&format!("{h}: power {} requested", state.word())),
                Err(s) => errs.push(format!("{h}: {}", seen_text(&s))),
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(FenceError::Device(errs.join("; ")))
        }
    }

    /// Every host answers over SSH, or its BMC answers (the device can still settle it).
    pub fn monitor(&mut self) -> FenceResult<()> {
        let opts = &self.opts;
        let got = fanout::ask_named(
            &mut self.hosts,
            &self.names,
            |h| h.with(opts, |e| e.monitor()),
            |n| Err(Seen::Failed(FenceError::Device(format!("no host {n}")))),
        );
        let mut errs = Vec::new();
        for (h, r) in got {
            match r {
                Ok(()) | Err(Seen::Down) => {}
                Err(Seen::Silent(why)) => match self.bmcs.as_ref().map(|b| b.status(&h)) {
                    Some(Ok(p)) => log::warn(&format!(
                        "host {h} does not answer over SSH ({why}); its BMC answers (chassis \
                         {})",
                        p.word()
                    )),
                    Some(Err(e)) => errs.push(format!(
                        "host {h} does not answer over SSH ({why}) and its BMC does not \
                         either ({e})"
                    )),
                    None => errs.push(format!("host {h} does not answer over SSH ({why})")),
                },
                Err(s) => errs.push(format!("host {h}: {}", seen_text(&s))),
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(FenceError::ConnectionLost(errs.join("; ")))
        }
    }

    /// Every VM of every answering host (its hosts and vmids as the alias; with status, ON
    /// when it runs on any host). A silent host is left out with a warning (settled off: its
    /// VMs are off and unlisted); any other failure is an error.
    pub fn list(&mut self, with_status: bool) -> FenceResult<Vec<Outlet>> {
        let opts = &self.opts;
        let got = fanout::ask_named(
            &mut self.hosts,
            &self.names,
            |h| h.with(opts, |e| e.list(with_status)),
            |n| Err(Seen::Failed(FenceError::Device(format!("no host {n}")))),
        );
        let mut out: Vec<Outlet> = Vec::new();
        let mut errs = Vec::new();
        let mut answered = 0usize;
        for (h, r) in got {
            match r {
                Ok(outlets) => {
                    answered += 1;
                    merge(&mut out, &h, outlets);
                }
                Err(Seen::Down) => {}
                Err(Seen::Silent(why)) => {
                    log::warn(&format!(
                        "host {h} does not answer over SSH ({why}): its VMs are not listed"
                    ));
                }
                Err(s) => errs.push(format!("host {h}: {}", seen_text(&s))),
            }
        }
        if !errs.is_empty() {
            return Err(FenceError::Device(errs.join("; ")));
        }
        if answered == 0 {
            return Err(FenceError::ConnectionLost("no host answered".into()));
        }
        Ok(out)
    }
}

/// Adds one host's outlets to the list: one line per VM name, `host:vmid` of every host that
/// has it in the alias; ON when it runs on any host, OFF when off on every host, else unknown.
fn merge(out: &mut Vec<Outlet>, host: &str, outlets: Vec<Outlet>) {
    for o in outlets {
        let alias = format!("{host}:{}", o.alias);
        match out.iter_mut().find(|x| x.id == o.id) {
            Some(x) => {
                x.alias.push(' ');
                x.alias.push_str(&alias);
                x.state = match (x.state, o.state) {
                    (Some(PowerState::On), _) | (_, Some(PowerState::On)) => Some(PowerState::On),
                    (Some(PowerState::Off), Some(PowerState::Off)) => Some(PowerState::Off),
                    _ => None,
                };
            }
            None => out.push(Outlet {
                id: o.id,
                alias,
                state: o.state,
            }),
        }
    }
}

fn several(plug: &str, hosts: &[String]) -> FenceError {
    FenceError::Device(format!(
        "VM '{plug}' is registered on several hosts that answered ({}): not powering it on \
         (unregister the stale copies first)",
        hosts.join(", ")
    ))
}

fn seen_text(s: &Seen) -> String {
    match s {
        Seen::Power(p) => p.to_string(),
        Seen::Absent => "VM not registered".into(),
        Seen::Silent(why) => format!("does not answer ({why})"),
        Seen::Failed(e) => e.to_string(),
        Seen::Down => "chassis reads off".into(),
    }
}

/// The status across hosts (see the module documentation).
fn verdict(plug: &str, seen: &[(String, Seen)], action: Option<Action>) -> FenceResult<PowerState> {
    let hosts_where = |f: fn(&Seen) -> bool| -> Vec<String> {
        seen.iter()
            .filter(|(_, s)| f(s))
            .map(|(h, _)| h.clone())
            .collect()
    };
    let running = hosts_where(|s| matches!(s, Seen::Power(VmPower::On | VmPower::Suspended)));
    let suspended = hosts_where(|s| matches!(s, Seen::Power(VmPower::Suspended)));
    let registered_off = hosts_where(|s| matches!(s, Seen::Power(VmPower::Off)));
    let down = hosts_where(|s| matches!(s, Seen::Down));
    let failed: Vec<String> = seen
        .iter()
        .filter_map(|(h, s)| match s {
            Seen::Failed(FenceError::Status(why)) => Some(why.clone()),
            Seen::Failed(e) => Some(format!("{h}: {e}")),
            Seen::Silent(why) => Some(format!("{h}: does not answer ({why})")),
            _ => None,
        })
        .collect();
    if running.len() > 1 {
        log::error(&format!(
            "VM '{plug}' runs on several hosts at once: {}",
            running.join(", ")
        ));
    }
    if !running.is_empty() {
        log::debug(&format!("VM '{plug}' runs on {}", running.join(", ")));
        if action == Some(Action::On) && !suspended.is_empty() {
            return Err(FenceError::Device(format!(
                "VM '{plug}' is suspended on {}: `on` would resume it from its saved memory, \
                 which fence_esxi never does; `off` powers it off and discards that state",
                suspended.join(", ")
            )));
        }
        return Ok(PowerState::On);
    }
    if !failed.is_empty() {
        return Err(FenceError::Status(format!(
            "VM '{plug}' runs on no host that answered, but not every host could be asked: {}",
            failed.join("; ")
        )));
    }
    if action == Some(Action::On) && registered_off.len() > 1 {
        return Err(several(plug, &registered_off));
    }
    if !registered_off.is_empty() || !down.is_empty() {
        return Ok(PowerState::Off);
    }
    Err(FenceError::PlugNotFound(format!(
        "VM '{plug}' not found on any host ({})",
        seen.iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(&str, Seen)]) -> Vec<(String, Seen)> {
        v.iter()
            .map(|(h, s)| ((*h).to_owned(), s.clone()))
            .collect()
    }

    fn outlet(id: &str, alias: &str, state: Option<PowerState>) -> Outlet {
        Outlet {
            id: id.to_owned(),
            alias: alias.to_owned(),
            state,
        }
    }

    #[test]
    fn list_merges_hosts_by_vm_name() {
        let mut out = Vec::new();
        merge(
            &mut out,
            "a",
            vec![
                outlet("x", "1", Some(PowerState::Off)),
                outlet("y", "2", Some(PowerState::Off)),
                outlet("z", "3", Some(PowerState::Off)),
            ],
        );
        merge(
            &mut out,
            "b",
            vec![
                outlet("x", "7", Some(PowerState::On)),
                outlet("y", "8", Some(PowerState::Off)),
                outlet("z", "9", None),
                outlet("w", "1", None),
            ],
        );
        assert_eq!(
            out,
            vec![
                outlet("x", "a:1 b:7", Some(PowerState::On)),
                outlet("y", "a:2 b:8", Some(PowerState::Off)),
                outlet("z", "a:3 b:9", None),
                outlet("w", "b:1", None),
            ]
        );
    }

    #[test]
    fn on_where_it_runs_even_with_a_silent_host() {
        let seen = s(&[
            ("a", Seen::Silent("refused".into())),
            ("b", Seen::Power(VmPower::On)),
        ]);
        assert_eq!(
            verdict("vm", &seen, Some(Action::Status)).ok(),
            Some(PowerState::On)
        );
    }

    #[test]
    fn off_only_when_every_host_answered() {
        let seen = s(&[("a", Seen::Absent), ("b", Seen::Power(VmPower::Off))]);
        assert_eq!(
            verdict("vm", &seen, Some(Action::Status)).ok(),
            Some(PowerState::Off)
        );
        let seen = s(&[
            ("a", Seen::Silent("refused".into())),
            ("b", Seen::Power(VmPower::Off)),
        ]);
        assert!(verdict("vm", &seen, Some(Action::Status)).is_err());
        let seen = s(&[
            ("a", Seen::Failed(FenceError::Device("garbage".into()))),
            ("b", Seen::Absent),
        ]);
        assert!(verdict("vm", &seen, Some(Action::Off)).is_err());
    }

    #[test]
    fn a_host_read_off_counts_as_off() {
        let seen = s(&[("a", Seen::Down), ("b", Seen::Absent)]);
        assert_eq!(
            verdict("vm", &seen, Some(Action::Off)).ok(),
            Some(PowerState::Off)
        );
        let seen = s(&[("a", Seen::Absent), ("b", Seen::Absent)]);
        assert!(matches!(
            verdict("vm", &seen, Some(Action::Status)),
            Err(FenceError::PlugNotFound(_))
        ));
    }

    #[test]
    fn on_refuses_several_registrations_and_suspended() {
        let seen = s(&[
            ("a", Seen::Power(VmPower::Off)),
            ("b", Seen::Power(VmPower::Off)),
        ]);
        let e = verdict("vm", &seen, Some(Action::On)).unwrap_err();
        assert!(e.to_string().contains("a, b"), "{e}");
        assert_eq!(
            verdict("vm", &seen, Some(Action::Status)).ok(),
            Some(PowerState::Off)
        );
        let seen = s(&[("a", Seen::Power(VmPower::Suspended))]);
        assert!(verdict("vm", &seen, Some(Action::On)).is_err());
        assert_eq!(
            verdict("vm", &seen, Some(Action::Off)).ok(),
            Some(PowerState::On)
        );
    }
}
