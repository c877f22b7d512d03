//! The engine: probe, fence and confirm, plan, execute, journal, report; `return` of a host and
//! the `watch` loop with its brake.
//!
//! Safety rules kept here:
//! - **Nothing moves off a host that was not read back as off**: its BMC said "off" after a
//!   hard power-off (or already was), or an administrator's `confirm-down` newer than the last
//!   time the host was seen alive is in the state directory. SSH silence is never a
//!   confirmation.
//! - **Never registered or started twice**: before acting on a VM the engine looks for its vmx
//!   on every live host (not in the journal): a VM powered on anywhere is done; a registration
//!   found is reused, never duplicated. So a restart after a kill, or a start with an empty
//!   state directory, finishes the work without repeating it.
//! - **A lock error stops that VM** ("Failed to lock the file": another host still holds its
//!   disks): no retry, no other method, never forced.
//! - Every side effect has an intent record in the journal before it and an outcome after it.
//! - **A stop request ([`Engine::with_stop`], set by SIGTERM in `watch`) ends the work between
//!   two steps**: the step under way finishes and gets its outcome record, no new step starts,
//!   and the evacuation stays "in progress" (no finish record, no report), so the next engine
//!   continues it from what the hosts show.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::backend::{normalize_vmx, BmcOps, HostOps, OpError, Registered};
use super::inventory::{Host, Inventory, Method, Role};
use super::journal::{now_ms, open_intents, Journal, Op, Phase, Record};
use super::plan::{plan, Disposition, Plan, PlannedVm, Situation};
use super::report::{deliver, HostResult, Report, Tried, VmReport, VmState};
use super::snapshot::{datastore_of, HostSnapshot, Snapshots, VmPower, VmRecord};
use super::state::{Evacuation, HostState, ProbeRecord, StateDir};
use crate::device::hostfence::{self, ReadBack};
use crate::protocol::agent::PowerState;

/// Why the engine could not do what it was asked. The CLI maps `Usage` to exit status 2 and
/// the others to 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Unknown host name or similar usage error.
    #[error("{0}")]
    Usage(String),
    /// Refused for safety (another engine active, brake, planned evacuation of a dead host).
    #[error("{0}")]
    Refused(String),
    /// Could not work (state directory unwritable, host unreachable, …).
    #[error("{0}")]
    Failed(String),
}

/// Tunables that are not inventory keys.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// How many times the BMC status is read back after a power-off before giving up.
    pub fence_reads: u32,
    /// Pause between those reads.
    pub fence_poll: Duration,
    /// How long a guest shutdown (`move`) may take before the VM is powered off.
    pub shutdown_bound: Duration,
    /// Sleeps (tests replace it).
    pub sleep: fn(Duration),
    /// `watch` only plans (and says what a rescue would do): no fence, no change anywhere.
    pub dry_run: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            fence_reads: 20,
            fence_poll: Duration::from_secs(1),
            shutdown_bound: Duration::from_secs(120),
            sleep: std::thread::sleep,
            dry_run: false,
        }
    }
}

/// One host's probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Host name.
    pub host: String,
    /// Its fresh snapshot, or why SSH + getallvms failed.
    pub ssh: Result<HostSnapshot, String>,
    /// BMC chassis power, or why it did not answer; `None` when not asked.
    pub bmc: Option<Result<PowerState, String>>,
}

impl Probe {
    /// A good probe: SSH answered and the BMC (when it answered) does not say off.
    pub fn good(&self) -> bool {
        self.ssh.is_ok() && !matches!(self.bmc, Some(Ok(PowerState::Off)))
    }

    /// Why the probe failed (empty when good).
    pub fn error(&self) -> String {
        let mut parts = Vec::new();
        if let Err(e) = &self.ssh {
            parts.push(format!("ssh: {e}"));
        }
        match &self.bmc {
            Some(Ok(PowerState::Off)) => parts.push("bmc: chassis power is off".into()),
            Some(Err(e)) => parts.push(format!("bmc: {e}")),
            _ => {}
        }
        parts.join("; ")
    }
}

/// What `watch --once` did.
#[derive(Debug, Clone, Default)]
pub struct WatchRound {
    /// Hosts whose probe failed this round.
    pub failing: Vec<String>,
    /// Hosts counted as failed (first failed probe until `return`).
    pub failed: Vec<String>,
    /// Set when the brake stopped every action.
    pub brake: Option<String>,
    /// Reports of the evacuations done this round.
    pub reports: Vec<Report>,
    /// Evacuations that could not even start.
    pub errors: Vec<String>,
    /// Dry run: what a rescue would do, one text per host that became due this round.
    pub dry: Vec<String>,
}

/// What `return` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReturnReport {
    /// The host.
    pub host: String,
    /// Stale registrations removed: `name (vmid N), now on HOST`.
    pub cleaned: Vec<String>,
    /// What could not be cleaned (the host stays untrusted).
    pub problems: Vec<String>,
    /// Warnings (autostart not turned off, …).
    pub warnings: Vec<String>,
}

/// Where a VM's vmx is registered on the live hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    host: String,
    vmid: u32,
    power: VmPower,
}

/// The engine over an inventory, a state directory and the host and BMC operations.
pub struct Engine<'a> {
    /// The inventory.
    pub inv: &'a Inventory,
    /// The state directory.
    pub state: &'a StateDir,
    /// Host operations.
    pub hosts: &'a dyn HostOps,
    /// BMC operations.
    pub bmc: &'a dyn BmcOps,
    /// Tunables.
    pub opts: EngineOptions,
    /// Progress lines (the CLI shows them on a terminal only).
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// Serialises read-modify-write of stored snapshots.
    snap_lock: Mutex<()>,
    /// Set when the engine must stop after the step under way (SIGTERM in `watch`).
    stop: Option<&'a AtomicBool>,
}

/// Unix ms to seconds, for durations.
fn secs_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

impl<'a> Engine<'a> {
    /// An engine.
    pub fn new(
        inv: &'a Inventory,
        state: &'a StateDir,
        hosts: &'a dyn HostOps,
        bmc: &'a dyn BmcOps,
        progress: &'a (dyn Fn(&str) + Sync),
    ) -> Self {
        Engine {
            inv,
            state,
            hosts,
            bmc,
            opts: EngineOptions::default(),
            progress,
            snap_lock: Mutex::new(()),
            stop: None,
        }
    }

    /// The engine stops between two steps once `flag` is set: the step under way finishes
    /// and is recorded, nothing new starts, and the evacuation in progress stays open.
    #[must_use]
    pub fn with_stop(mut self, flag: &'a AtomicBool) -> Self {
        self.stop = Some(flag);
        self
    }

    /// True once a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.is_some_and(|f| f.load(Ordering::SeqCst))
    }

    fn stopped_error(&self, host: &str) -> EngineError {
        EngineError::Refused(format!(
            "stopped before the evacuation of {host} finished (the step under way was \
             finished and recorded); the next start of the engine continues it"
        ))
    }

    fn host(&self, name: &str) -> Result<&'a Host, EngineError> {
        self.inv.host(name).ok_or_else(|| {
            EngineError::Usage(format!("unknown host {name:?} (not in the inventory)"))
        })
    }

    // -----------------------------------------------------------------------------------------
    // Probing.

    /// Probes `host`: SSH + getallvms (+ power states, memory, datastores: read-only calls
    /// only) and, with `with_bmc`, the BMC's chassis status. A good SSH probe is stored as the
    /// host's snapshot.
    pub fn probe(&self, host: &str, with_bmc: bool) -> Probe {
        let prev = self.state.snapshot(host);
        let ssh = self.snapshot_of(host, prev.as_ref());
        if let Ok(s) = &ssh {
            let _g = self.snap_lock.lock();
            let _ = self.state.save_snapshot(s);
        }
        let bmc = with_bmc.then(|| self.bmc.status(host).map_err(|e| e.to_string()));
        Probe {
            host: host.to_string(),
            ssh,
            bmc,
        }
    }

    fn snapshot_of(&self, host: &str, prev: Option<&HostSnapshot>) -> Result<HostSnapshot, String> {
        let memory_of = |r: &Registered| -> Option<u64> {
            self.inv.vm(&r.name).and_then(|v| v.memory_mb).or_else(|| {
                prev.and_then(|p| {
                    p.vms
                        .iter()
                        .find(|v| normalize_vmx(&v.vmx) == normalize_vmx(&r.vmx))
                        .and_then(|v| v.memory_mb)
                })
            })
        };
        let vms = self
            .hosts
            .list_vms(host, &memory_of)
            .map_err(|e| e.to_string())?;
        let inv_mem = self.inv.host(host).and_then(|h| h.memory_mb);
        let memory_mb = match inv_mem {
            Some(_) => None,
            None => self
                .hosts
                .host_memory_mb(host)
                .ok()
                .flatten()
                .or_else(|| prev.and_then(|p| p.memory_mb)),
        };
        let datastores = match self.hosts.datastores(host) {
            Ok(d) if !d.is_empty() => d,
            _ => prev.map(|p| p.datastores.clone()).unwrap_or_default(),
        };
        Ok(HostSnapshot {
            host: host.to_string(),
            taken_at: now_ms() / 1000,
            memory_mb,
            datastores,
            vms,
        })
    }

    /// Probes every inventory host in parallel.
    pub fn probe_all(&self, with_bmc: bool) -> BTreeMap<String, Probe> {
        let names: Vec<&str> = self.inv.hosts.iter().map(|h| h.name.as_str()).collect();
        let out = Mutex::new(BTreeMap::new());
        std::thread::scope(|s| {
            for name in &names {
                let out = &out;
                s.spawn(move || {
                    let p = self.probe(name, with_bmc);
                    if let Ok(mut m) = out.lock() {
                        m.insert(name.to_string(), p);
                    }
                });
            }
        });
        out.into_inner().unwrap_or_default()
    }

    /// Records a probe in the host's history (`count` also counts failures, as `watch` does).
    fn record_probe(&self, p: &Probe, count: bool) -> HostState {
        let mut hs = self.state.host_state(&p.host);
        let now = now_ms();
        let good = p.good();
        hs.last_probe = Some(ProbeRecord {
            at_ms: now,
            ssh_ok: p.ssh.is_ok(),
            bmc_power: match &p.bmc {
                Some(Ok(PowerState::On)) => Some("on".into()),
                Some(Ok(PowerState::Off)) => Some("off".into()),
                _ => None,
            },
            error: (!good).then(|| p.error()),
        });
        if p.ssh.is_ok() {
            hs.last_seen_alive_ms = Some(now);
        }
        if count {
            if good {
                // Consecutive failures restart from zero; the host still counts as failed
                // (failed_since_ms) until `return`.
                hs.failures = 0;
            } else {
                hs.failures = hs.failures.saturating_add(1);
                hs.failed_since_ms.get_or_insert(now);
            }
        }
        let _ = self.state.save_host_state(&p.host, &hs);
        hs
    }

    // -----------------------------------------------------------------------------------------
    // Planning.

    /// The snapshot an evacuation of `host` works from: the one its evacuation record started
    /// from (so VMs already moved off a live host are still known), else the fresh or stored
    /// one.
    fn source_snapshot(&self, host: &str, fresh: Option<&HostSnapshot>) -> Option<HostSnapshot> {
        if let Some(ev) = self.state.evacuation(host) {
            return Some(ev.source);
        }
        fresh.cloned().or_else(|| self.state.snapshot(host))
    }

    /// Hosts that cannot be targets: the probe failed, or they are counted as failed.
    fn down_hosts(&self, source: &str, probes: &BTreeMap<String, Probe>) -> BTreeSet<String> {
        self.inv
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .filter(|h| *h != source)
            .filter(|h| {
                probes.get(*h).map_or(true, |p| !p.good()) || self.state.host_state(h).evacuated
            })
            .map(str::to_string)
            .collect()
    }

    fn make_plan(
        &self,
        host: &str,
        source: &HostSnapshot,
        live_source: bool,
        probes: &BTreeMap<String, Probe>,
    ) -> Plan {
        let names: Vec<&str> = self.inv.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut snaps: Snapshots = self.state.snapshots(names.iter().copied());
        snaps.insert(host.to_string(), source.clone());
        let sit = if live_source {
            Situation::planned()
        } else {
            Situation::dead_host()
        }
        .with_down(self.down_hosts(host, probes));
        plan(self.inv, &snaps, host, &sit)
    }

    /// `plan --host H`: a dry run. Only read-only host calls (the probes) are made and nothing
    /// is sent to any BMC.
    pub fn dry_plan(&self, host: &str, planned: bool) -> Result<Plan, EngineError> {
        self.host(host)?;
        let probes = self.probe_all(false);
        let fresh = probes.get(host).and_then(|p| p.ssh.as_ref().ok());
        let source = self.source_snapshot(host, fresh).ok_or_else(|| {
            EngineError::Failed(format!(
                "no snapshot of {host}: it was never probed, so what runs there is unknown"
            ))
        })?;
        Ok(self.make_plan(host, &source, planned, &probes))
    }

    // -----------------------------------------------------------------------------------------
    // Fencing.

    fn journal_rec(&self, j: &Journal, rec: &Record) -> Result<(), String> {
        j.append(rec)
            .map_err(|e| format!("journal not written ({e}): step not taken"))
    }

    /// Fences `host` and confirms it is off; `Ok(how)` or `Err(why not)`.
    fn fence(&self, host: &str, j: &Journal) -> Result<String, String> {
        let hs = self.state.host_state(host);
        if let Some(c) = self.state.confirmation(host) {
            let alive = hs.last_seen_alive_ms.unwrap_or(0);
            if c.at_ms > alive {
                let mut r = Record::new(host, Op::ConfirmDown, Phase::Done);
                r.detail = Some("accepted".into());
                self.journal_rec(j, &r)?;
                return Ok("admin".into());
            }
        }
        self.journal_rec(j, &Record::new(host, Op::Fence, Phase::Intent))?;
        let outcome = self.fence_bmc(host);
        let mut r = Record::new(
            host,
            Op::Fence,
            if outcome.is_ok() {
                Phase::Done
            } else {
                Phase::Failed
            },
        );
        match &outcome {
            Ok(how) => r.detail = Some(how.clone()),
            Err(e) => r.error = Some(e.clone()),
        }
        self.journal_rec(j, &r)?;
        outcome
    }

    fn fence_bmc(&self, host: &str) -> Result<String, String> {
        (self.progress)(&format!("{host}: fencing through its BMC"));
        if let Ok(PowerState::Off) = self.bmc.status(host) {
            return Ok("bmc: already off".into());
        }
        let rb = ReadBack {
            reads: self.opts.fence_reads,
            poll: self.opts.fence_poll,
        };
        hostfence::power_off_confirmed(self.bmc, host, rb, &self.opts.sleep, &|| self.stopping())
            .map(|()| "bmc".to_string())
            .map_err(|why| {
                format!(
                    "fence of {host} not confirmed ({why}); nothing was moved; if the host is \
                     certainly down, confirm it with `vm-evacuate confirm-down --host {host}`"
                )
            })
    }

    /// `confirm-down --host H`: records an administrator's confirmation.
    pub fn confirm_down(&self, host: &str) -> Result<(), EngineError> {
        self.host(host)?;
        self.state.confirm_down(host).map_err(EngineError::Failed)?;
        if let Ok(j) = self.state.journal() {
            let _ = j.append(&Record::new(host, Op::ConfirmDown, Phase::Done));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Run.

    /// `run --host H [--planned]`: rescue a dead host (fence, confirm, plan, execute) or
    /// evacuate a live one; the report is written, logged and handed to `notify_command`.
    pub fn run(&self, host: &str, planned: bool) -> Result<Report, EngineError> {
        let src_host = self.host(host)?;
        let j = self.state.journal().map_err(EngineError::Failed)?;
        let started = Instant::now();
        let started_ms = now_ms();
        let mode = if planned { "planned" } else { "rescue" };
        (self.progress)(&format!("{host}: probing every host"));
        let probes = self.probe_all(false);
        for p in probes.values() {
            self.record_probe(p, false);
        }
        let reachable: Vec<String> = probes
            .values()
            .filter(|p| p.ssh.is_ok())
            .map(|p| p.host.clone())
            .collect();
        self.reconcile(host, &j, &reachable);
        let fresh = probes.get(host).and_then(|p| p.ssh.as_ref().ok());
        if planned && fresh.is_none() {
            let why = probes.get(host).map(Probe::error).unwrap_or_default();
            return Err(EngineError::Refused(format!(
                "{host} does not answer ({why}): a planned evacuation needs a live host; \
                 rescue it with `vm-evacuate run --host {host}`"
            )));
        }
        let mut report = Report {
            host: host.to_string(),
            mode: mode.to_string(),
            result: HostResult::Ok,
            reason: None,
            fence: None,
            started_ms,
            finished_ms: 0,
            seconds: 0.0,
            warnings: Vec::new(),
            vms: Vec::new(),
        };
        let finish = |mut report: Report| -> Report {
            report.finished_ms = now_ms();
            report.seconds = secs_since(started);
            report.judge(src_host.role == Role::Maintenance);
            report.warnings.extend(deliver(
                &report,
                self.state,
                self.inv.policy.notify_command.as_deref(),
            ));
            report
        };
        let Some(source) = self.source_snapshot(host, fresh) else {
            report.reason = Some(format!(
                "no snapshot of {host}: it was never probed while alive, so what ran there is \
                 unknown; nothing was moved"
            ));
            return Ok(finish(report));
        };
        if self.stopping() {
            return Err(self.stopped_error(host));
        }
        if !planned {
            match self.fence(host, &j) {
                Ok(how) => report.fence = Some(how),
                Err(_) if self.stopping() => return Err(self.stopped_error(host)),
                Err(why) => {
                    let p = self.make_plan(host, &source, false, &probes);
                    report.vms = p
                        .vms
                        .iter()
                        .map(|v| {
                            let mut r = skeleton(v);
                            if v.disposition == Disposition::Placed {
                                r.state = VmState::NotMoved;
                                r.reason = Some("fence not confirmed".into());
                            }
                            r
                        })
                        .collect();
                    report.reason = Some(why);
                    return Ok(finish(report));
                }
            }
        }
        // From here on the host counts as evacuated until `return`.
        let mut hs = self.state.host_state(host);
        hs.evacuated = true;
        self.state
            .save_host_state(host, &hs)
            .map_err(EngineError::Failed)?;
        let ev = match self.state.evacuation(host) {
            Some(ev) if ev.finished_ms.is_none() => ev,
            _ => Evacuation {
                host: host.to_string(),
                mode: mode.to_string(),
                started_ms,
                finished_ms: None,
                result: None,
                source: source.clone(),
            },
        };
        self.state
            .save_evacuation(&Evacuation {
                finished_ms: None,
                result: None,
                ..ev.clone()
            })
            .map_err(EngineError::Failed)?;
        let mut start = Record::new(host, Op::Start, Phase::Done);
        start.detail = Some(mode.to_string());
        j.append(&start).map_err(EngineError::Failed)?;
        if !planned && self.inv.policy.post_fence_wait_s > 0 {
            (self.progress)(&format!(
                "{host}: waiting {} s after the fence",
                self.inv.policy.post_fence_wait_s
            ));
            (self.opts.sleep)(Duration::from_secs(self.inv.policy.post_fence_wait_s));
        }
        let p = self.make_plan(host, &source, planned, &probes);
        let mut live: Vec<String> = self
            .inv
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .filter(|h| probes.get(h).is_some_and(|p| p.ssh.is_ok()))
            .filter(|h| h != host || planned)
            .collect();
        live.sort();
        // Evacuated hosts not yet returned are searched too (a copy running there counts as
        // running), but their registrations are stale: never reused.
        let stale: BTreeSet<String> = live
            .iter()
            .filter(|h| *h != host && self.state.host_state(h).evacuated)
            .cloned()
            .collect();
        let exec = Exec {
            eng: self,
            j: &j,
            source: host,
            planned,
            live,
            stale,
            failed: Mutex::new(BTreeSet::new()),
        };
        report.vms = exec.execute(&p);
        if self.stopping() && report.vms.iter().any(|v| v.state == VmState::NotMoved) {
            // Left open: no report, no finish record; the next engine continues.
            return Err(self.stopped_error(host));
        }
        let report = finish(report);
        let _ = self.state.save_evacuation(&Evacuation {
            finished_ms: Some(report.finished_ms),
            result: Some(report.result.as_str().to_string()),
            ..ev
        });
        let mut fin = Record::new(host, Op::Finish, Phase::Done);
        fin.detail = Some(report.result.as_str().to_string());
        let _ = j.append(&fin);
        Ok(report)
    }

    /// On start: closes the journal's open intents about `host` (an engine stopped between a
    /// side effect and its outcome record) with what the reachable hosts show now. This only
    /// completes the record: every step checks the hosts again before acting.
    fn reconcile(&self, host: &str, j: &Journal, reachable: &[String]) {
        for o in open_intents(&j.since_return(host)) {
            let seen = match (o.op, o.vmx.as_deref(), o.target.as_deref()) {
                (Op::Fence, _, _) => "outcome unknown: the fence is read back again".to_string(),
                (_, Some(vmx), Some(t)) if reachable.iter().any(|h| h == t) => {
                    let key = normalize_vmx(vmx);
                    match self.hosts.list_registered(t) {
                        Ok(regs) => match regs.iter().find(|r| normalize_vmx(&r.vmx) == key) {
                            Some(r) => match self.hosts.power_state(t, r.vmid) {
                                Ok(p) => format!("registered on {t} as vmid {}, {p}", r.vmid),
                                Err(e) => format!("registered on {t} as vmid {} ({e})", r.vmid),
                            },
                            None => format!("not registered on {t}"),
                        },
                        Err(e) => format!("{t} not listed ({e})"),
                    }
                }
                (_, _, Some(t)) => format!("{t} does not answer: outcome unknown"),
                _ => "outcome unknown".to_string(),
            };
            let mut r = o.clone();
            r.ts_ms = now_ms();
            r.phase = Phase::Reconciled;
            r.detail = Some(seen);
            let _ = j.append(&r);
        }
    }

    /// Adds a placed VM to `target`'s stored snapshot at once (and, for a live source, removes
    /// it from the source's).
    fn note_placed(
        &self,
        v: &PlannedVm,
        target: &str,
        vmid: u32,
        running: bool,
        source: Option<&str>,
    ) {
        let Ok(_g) = self.snap_lock.lock() else {
            return;
        };
        let key = normalize_vmx(&v.vmx);
        if let Some(mut s) = self.state.snapshot(target) {
            s.vms.retain(|r| normalize_vmx(&r.vmx) != key);
            s.vms.push(VmRecord {
                name: v.name.clone(),
                vmid,
                vmx: v.vmx.clone(),
                datastore: datastore_of(&v.vmx).unwrap_or_default().to_string(),
                power: if running { VmPower::On } else { v.power },
                memory_mb: v.memory_mb,
            });
            let _ = self.state.save_snapshot(&s);
        }
        if let Some(src) = source {
            if let Some(mut s) = self.state.snapshot(src) {
                s.vms.retain(|r| normalize_vmx(&r.vmx) != key);
                let _ = self.state.save_snapshot(&s);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Return.

    /// `return --host H`: before H is trusted again, unregister its stale registrations of VMs
    /// that now run (are registered) on another live host, turning their autostart off first.
    pub fn return_host(&self, host: &str) -> Result<ReturnReport, EngineError> {
        self.host(host)?;
        let j = self.state.journal().map_err(EngineError::Failed)?;
        let mine = self.hosts.list_registered(host).map_err(|e| {
            EngineError::Failed(format!(
                "{host} does not answer ({e}): it cannot be returned yet"
            ))
        })?;
        let mut out = ReturnReport {
            host: host.to_string(),
            ..ReturnReport::default()
        };
        let mut elsewhere: BTreeMap<String, String> = BTreeMap::new();
        for h in self.inv.hosts.iter().filter(|h| h.name != host) {
            if self.state.host_state(&h.name).evacuated {
                continue;
            }
            match self.hosts.list_registered(&h.name) {
                Ok(regs) => {
                    for r in regs {
                        elsewhere
                            .entry(normalize_vmx(&r.vmx))
                            .or_insert_with(|| h.name.clone());
                    }
                }
                Err(e) => out.warnings.push(format!("{}: not checked ({e})", h.name)),
            }
        }
        for r in &mine {
            let Some(other) = elsewhere.get(&normalize_vmx(&r.vmx)) else {
                continue;
            };
            match self.hosts.power_state(host, r.vmid) {
                Ok(VmPower::Off) => {}
                Ok(p) => {
                    out.problems.push(format!(
                        "{} (vmid {}) is {p} on {host} and registered on {other}: left alone",
                        r.name, r.vmid
                    ));
                    continue;
                }
                Err(e) => {
                    out.problems.push(format!(
                        "{} (vmid {}): state not read ({e})",
                        r.name, r.vmid
                    ));
                    continue;
                }
            }
            let rec = |op: Op, phase: Phase, err: Option<String>| {
                let mut x = Record::new(host, op, phase);
                x.vm = Some(r.name.clone());
                x.vmx = Some(r.vmx.clone());
                x.target = Some(host.to_string());
                x.vmid = Some(r.vmid);
                x.error = err;
                x
            };
            if self
                .journal_rec(&j, &rec(Op::AutostartOff, Phase::Intent, None))
                .is_err()
            {
                out.problems.push("journal not writable".into());
                break;
            }
            match self.hosts.autostart_off(host, r.vmid) {
                Ok(()) => {
                    let _ = j.append(&rec(Op::AutostartOff, Phase::Done, None));
                }
                Err(e) => {
                    let _ = j.append(&rec(Op::AutostartOff, Phase::Failed, Some(e.to_string())));
                    out.warnings.push(format!(
                        "{} (vmid {}): autostart not turned off ({e})",
                        r.name, r.vmid
                    ));
                }
            }
            if self
                .journal_rec(&j, &rec(Op::Unregister, Phase::Intent, None))
                .is_err()
            {
                out.problems.push("journal not writable".into());
                break;
            }
            match self.hosts.unregister(host, r.vmid) {
                Ok(()) => {
                    let _ = j.append(&rec(Op::Unregister, Phase::Done, None));
                    out.cleaned
                        .push(format!("{} (vmid {}), now on {other}", r.name, r.vmid));
                }
                Err(e) => {
                    let _ = j.append(&rec(Op::Unregister, Phase::Failed, Some(e.to_string())));
                    out.problems.push(format!(
                        "{} (vmid {}): not unregistered ({e})",
                        r.name, r.vmid
                    ));
                }
            }
        }
        if out.problems.is_empty() {
            let mut hs = self.state.host_state(host);
            hs.evacuated = false;
            hs.failures = 0;
            hs.failed_since_ms = None;
            hs.last_seen_alive_ms = Some(now_ms());
            self.state
                .save_host_state(host, &hs)
                .map_err(EngineError::Failed)?;
            self.state
                .clear_confirmation(host)
                .map_err(EngineError::Failed)?;
            let _ = std::fs::remove_file(
                self.state
                    .root()
                    .join("evacuations")
                    .join(format!("{}.json", super::state::escape(host))),
            );
            let _ = self.probe(host, false);
            j.append(&Record::new(host, Op::Return, Phase::Done))
                .map_err(EngineError::Failed)?;
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // Watch.

    /// One `watch` round: probe every host (SSH + getallvms, BMC chassis status), count
    /// consecutive failures, apply the brake, and rescue the hosts that reached
    /// `detect_failures` (and are not already evacuated with success).
    pub fn watch_once(&self) -> WatchRound {
        let mut round = WatchRound::default();
        let probes = self.probe_all(true);
        let mut states: BTreeMap<String, HostState> = BTreeMap::new();
        for p in probes.values() {
            if !p.good() {
                round.failing.push(p.host.clone());
            }
            states.insert(p.host.clone(), self.record_probe(p, true));
        }
        round.failed = states
            .iter()
            .filter(|(_, s)| s.failed())
            .map(|(h, _)| h.clone())
            .collect();
        let total = self.inv.hosts.len();
        let pct = u64::from(self.inv.policy.brake_percent);
        let failed = round.failed.len();
        if total > 0 && (failed as u64) * 100 > pct * (total as u64) {
            round.brake = Some(format!(
                "brake: {failed} of {total} hosts are failed ({}), more than brake_percent = \
                 {pct}%: acting on none",
                round.failed.join(", ")
            ));
            return round;
        }
        let due: Vec<String> = states
            .iter()
            .filter(|(_, s)| s.failures >= self.inv.policy.detect_failures.max(1))
            .filter(|(h, _)| {
                self.state.evacuation(h).map_or(true, |ev| {
                    ev.finished_ms.is_none()
                        || (ev.result.as_deref() == Some("error") && self.retries_left(h))
                })
            })
            .map(|(h, _)| h.clone())
            .collect();
        for h in due {
            if self.stopping() {
                break;
            }
            if self.opts.dry_run {
                // Said once, when the host becomes due; nothing is fenced or changed.
                let first = states.get(&h).map(|s| s.failures)
                    == Some(self.inv.policy.detect_failures.max(1));
                if first {
                    round.dry.push(match self.dry_plan(&h, false) {
                        Ok(p) => format!(
                            "dry run: {h} failed {} probes; a rescue would fence it and plan: {}",
                            self.inv.policy.detect_failures,
                            p.vms
                                .iter()
                                .map(|v| match (&v.target, v.disposition) {
                                    (Some(t), Disposition::Placed) => format!("{} -> {t}", v.name),
                                    _ => format!(
                                        "{}: {}",
                                        v.name,
                                        v.reason.as_deref().unwrap_or("not moved")
                                    ),
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Err(e) => format!("dry run: {h} would be rescued, but: {e}"),
                    });
                }
                continue;
            }
            (self.progress)(&format!(
                "{h}: {} failed probes: rescuing",
                self.inv.policy.detect_failures
            ));
            match self.run(&h, false) {
                Ok(r) => round.reports.push(r),
                Err(e) => round.errors.push(format!("{h}: {e}")),
            }
        }
        round
    }
}

impl Engine<'_> {
    /// Whether `watch` may run the evacuation of `host` again after it ended in error: at most
    /// `1 + vm_retry_limit` runs since the host was last returned (bounded, never endless).
    fn retries_left(&self, host: &str) -> bool {
        let runs = self
            .state
            .journal_ro()
            .since_return(host)
            .iter()
            .filter(|r| r.op == Op::Finish)
            .count();
        let limit = 1 + usize::try_from(self.inv.policy.vm_retry_limit).unwrap_or(usize::MAX);
        runs < limit
    }
}

/// A report record for a planned VM before execution.
fn skeleton(v: &PlannedVm) -> VmReport {
    let (state, target) = match v.disposition {
        Disposition::Placed => (VmState::NotMoved, v.target.clone()),
        Disposition::Unplaced => (VmState::Unplaced, None),
        Disposition::Skipped => match v
            .reason
            .as_deref()
            .and_then(|r| r.strip_prefix("already running on "))
        {
            Some(h) => (VmState::Done, Some(h.to_string())),
            None => (VmState::Skipped, None),
        },
    };
    VmReport {
        name: v.name.clone(),
        source: v.source.clone(),
        target,
        method: match v.disposition {
            Disposition::Placed => v.methods.first().copied(),
            _ => None,
        },
        reason: v.reason.clone(),
        tried: Vec::new(),
        state,
        vmid: None,
        started_ms: None,
        seconds: 0.0,
    }
}

/// The vmid a step returned (a registration), for its outcome record.
fn vmid_of<T: std::any::Any>(x: &T) -> Option<u32> {
    (x as &dyn std::any::Any).downcast_ref::<u32>().copied()
}

/// Why one method attempt failed.
#[derive(Debug)]
struct StepError {
    err: OpError,
    what: String,
}

impl StepError {
    fn new(what: impl Into<String>, err: OpError) -> Self {
        StepError {
            err,
            what: what.into(),
        }
    }
    fn text(&self) -> String {
        format!("{}: {}", self.what, self.err)
    }
}

/// One execution of a plan.
struct Exec<'e, 'a> {
    eng: &'e Engine<'a>,
    j: &'e Journal,
    source: &'e str,
    planned: bool,
    /// Hosts whose registrations are searched before any step (the source too when live).
    live: Vec<String>,
    /// Evacuated hosts among them: a copy running there is found, a registration not reused.
    stale: BTreeSet<String>,
    /// VMs that could not be moved (their dependents are not started).
    failed: Mutex<BTreeSet<String>>,
}

impl Exec<'_, '_> {
    /// Runs the plan tier by tier, at most `max_parallel` VMs at once; one report per VM in
    /// plan order.
    fn execute(&self, p: &Plan) -> Vec<VmReport> {
        let mut done: BTreeMap<(String, String), VmReport> = BTreeMap::new();
        let par = usize::try_from(self.eng.inv.policy.max_parallel.max(1)).unwrap_or(1);
        for tier in p.tiers() {
            let queue: Mutex<Vec<&PlannedVm>> = Mutex::new(tier.iter().rev().copied().collect());
            let results: Mutex<Vec<VmReport>> = Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for _ in 0..par.min(tier.len()) {
                    s.spawn(|| loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(v) = next else { break };
                        let r = self.one(v);
                        if let Ok(mut res) = results.lock() {
                            res.push(r);
                        }
                    });
                }
            });
            for r in results.into_inner().unwrap_or_default() {
                done.insert((r.name.clone(), r.source.clone()), r);
            }
        }
        // Plan order; placed VMs take their execution record.
        let mut used: BTreeSet<(String, String)> = BTreeSet::new();
        p.vms
            .iter()
            .map(|v| {
                let key = (v.name.clone(), v.source.clone());
                match (v.disposition, done.get(&key)) {
                    (Disposition::Placed, Some(r)) if used.insert(key.clone()) => r.clone(),
                    _ => skeleton(v),
                }
            })
            .collect()
    }

    fn rec(&self, op: Op, phase: Phase, v: &PlannedVm, target: &str, vmid: Option<u32>) -> Record {
        let mut r = Record::new(self.source, op, phase);
        r.vm = Some(v.name.clone());
        r.vmx = Some(v.vmx.clone());
        r.target = Some(target.to_string());
        r.vmid = vmid;
        r
    }

    /// A side effect between its intent and outcome records.
    fn step<T: std::any::Any>(
        &self,
        op: Op,
        v: &PlannedVm,
        target: &str,
        vmid: Option<u32>,
        f: impl FnOnce() -> Result<T, OpError>,
    ) -> Result<T, StepError> {
        let what = format!("{} on {target}", op.as_str());
        if self.eng.stopping() {
            return Err(StepError::new(
                &what,
                OpError::Failed("not started: the engine is stopping".into()),
            ));
        }
        self.j
            .append(&self.rec(op, Phase::Intent, v, target, vmid))
            .map_err(|e| {
                StepError::new(&what, OpError::Failed(format!("journal not written: {e}")))
            })?;
        let r = f();
        let mut out = self.rec(
            op,
            if r.is_ok() {
                Phase::Done
            } else {
                Phase::Failed
            },
            v,
            target,
            vmid,
        );
        if let Err(e) = &r {
            out.error = Some(e.to_string());
        }
        if out.vmid.is_none() {
            out.vmid = r.as_ref().ok().and_then(vmid_of);
        }
        let _ = self.j.append(&out);
        r.map_err(|e| StepError::new(what, e))
    }

    /// Where the VM's vmx is registered on the live hosts, with power states. The hosts are
    /// asked in parallel (one thread each); the result is in `live` order.
    fn locate(&self, vmx: &str) -> Vec<Found> {
        let key = normalize_vmx(vmx);
        let on_host = |h: &String| -> Vec<Found> {
            let Ok(regs) = self.eng.hosts.list_registered(h) else {
                return Vec::new();
            };
            regs.into_iter()
                .filter(|r| normalize_vmx(&r.vmx) == key)
                .filter_map(|r| {
                    self.eng
                        .hosts
                        .power_state(h, r.vmid)
                        .ok()
                        .map(|power| Found {
                            host: h.clone(),
                            vmid: r.vmid,
                            power,
                        })
                })
                .collect()
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .live
                .iter()
                .map(|h| s.spawn(move || on_host(h)))
                .collect();
            handles
                .into_iter()
                .flat_map(|t| t.join().unwrap_or_default())
                .collect()
        })
    }

    /// Moves one VM through its methods in order.
    fn one(&self, v: &PlannedVm) -> VmReport {
        let mut rep = skeleton(v);
        let t0 = Instant::now();
        rep.started_ms = Some(now_ms());
        let target = v.target.clone().unwrap_or_default();
        let policy = &self.eng.inv.policy;
        for m in &policy.methods {
            if !v.methods.contains(m) {
                rep.tried.push(Tried {
                    method: *m,
                    error: Some(if self.planned {
                        "not possible: the source host is alive (failover is for a dead host)"
                            .into()
                    } else {
                        "not possible: the source host is dead".into()
                    }),
                    seconds: 0.0,
                });
            }
        }
        if let Some(s) = self.eng.inv.vm(&v.name) {
            let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
            if let Some(dep) = s.depends_on.iter().find(|d| failed.contains(*d)) {
                rep.state = VmState::Failed;
                rep.reason = Some(format!("depends on {dep}, which could not be moved"));
                self.mark_failed(&v.name);
                return rep;
            }
        }
        if self.eng.stopping() {
            rep.reason = Some("not started: the engine was stopped".into());
            return rep;
        }
        (self.eng.progress)(&format!("{}: moving to {target}", v.name));
        let mut last: Option<String> = None;
        'methods: for m in &v.methods {
            let attempts = 1 + policy.vm_retry_limit;
            for _ in 0..attempts {
                let ta = Instant::now();
                let r = match m {
                    Method::Failover => self.failover(v, &target),
                    Method::QuickMigration => self.quick_migration(v, &target),
                    Method::Move => self.move_vm(v, &target),
                };
                match r {
                    Ok((host, vmid)) => {
                        rep.tried.push(Tried {
                            method: *m,
                            error: None,
                            seconds: secs_since(ta),
                        });
                        rep.state = VmState::Done;
                        rep.method = Some(*m);
                        rep.target = Some(host);
                        rep.vmid = vmid;
                        rep.reason = None;
                        rep.seconds = secs_since(t0);
                        (self.eng.progress)(&format!("{}: done ({m})", v.name));
                        return rep;
                    }
                    Err(e) => {
                        let text = e.text();
                        rep.tried.push(Tried {
                            method: *m,
                            error: Some(text.clone()),
                            seconds: secs_since(ta),
                        });
                        last = Some(text);
                        if self.eng.stopping() {
                            // Not a failure of the VM: the next engine continues it.
                            rep.state = VmState::NotMoved;
                            rep.reason = Some(format!(
                                "stopped by the engine's stop before it was done ({})",
                                last.as_deref().unwrap_or("")
                            ));
                            rep.seconds = secs_since(t0);
                            return rep;
                        }
                        if matches!(e.err, OpError::Locked(_)) {
                            break 'methods;
                        }
                        if !e.err.transient() {
                            break;
                        }
                    }
                }
            }
        }
        rep.state = VmState::Failed;
        rep.reason = last.or_else(|| Some("no method left".into()));
        rep.seconds = secs_since(t0);
        (self.eng.progress)(&format!(
            "{}: failed ({})",
            v.name,
            rep.reason.as_deref().unwrap_or("")
        ));
        self.mark_failed(&v.name);
        rep
    }

    fn mark_failed(&self, name: &str) {
        if let Ok(mut f) = self.failed.lock() {
            f.insert(name.to_string());
        }
    }

    /// Registers the VM on `target` unless a live host already has it; `(host, vmid, power)`
    /// with the power state when known (a registration found just now, or off when this
    /// call registered it).
    fn ensure_registered(
        &self,
        v: &PlannedVm,
        target: &str,
        found: &[Found],
    ) -> Result<(String, u32, Option<VmPower>), StepError> {
        let elsewhere: Vec<&Found> = found
            .iter()
            .filter(|f| f.host != self.source || !self.planned)
            .filter(|f| !self.stale.contains(&f.host))
            .collect();
        if let Some(f) = elsewhere
            .iter()
            .find(|f| f.host == target)
            .or_else(|| elsewhere.first())
        {
            return Ok((f.host.clone(), f.vmid, None));
        }
        // Looked for on every live host just now: not registered anywhere.
        let vmid = self.step(Op::Register, v, target, None, || {
            self.eng.hosts.register(target, &v.vmx)
        })?;
        // A VM registered just now is powered off.
        Ok((target.to_string(), vmid, Some(VmPower::Off)))
    }

    fn start_if_needed(
        &self,
        v: &PlannedVm,
        host: &str,
        vmid: u32,
        known: Option<VmPower>,
    ) -> Result<(), StepError> {
        if !v.start {
            return Ok(());
        }
        let on = match known {
            Some(p) => p == VmPower::On,
            None => self.eng.hosts.power_state(host, vmid).ok() == Some(VmPower::On),
        };
        if !on {
            self.step(Op::PowerOn, v, host, Some(vmid), || {
                self.eng.hosts.power_on(host, vmid)
            })?;
        }
        Ok(())
    }

    fn placed(
        &self,
        v: &PlannedVm,
        host: &str,
        vmid: u32,
    ) -> Result<(String, Option<u32>), StepError> {
        self.eng
            .note_placed(v, host, vmid, v.start, self.planned.then_some(self.source));
        Ok((host.to_string(), Some(vmid)))
    }

    /// Dead source: register on the target, power on, answer the question.
    fn failover(&self, v: &PlannedVm, target: &str) -> Result<(String, Option<u32>), StepError> {
        let found = self.locate(&v.vmx);
        if let Some(f) = found.iter().find(|f| f.power == VmPower::On) {
            return self.placed(v, &f.host.clone(), f.vmid);
        }
        let (host, vmid, known) = self.ensure_registered(v, target, &found)?;
        self.start_if_needed(v, &host, vmid, known)?;
        self.placed(v, &host, vmid)
    }

    /// The VM's registration on the (live) source, if any, and whether it runs elsewhere.
    fn on_source<'f>(&self, found: &'f [Found]) -> Option<&'f Found> {
        found.iter().find(|f| f.host == self.source)
    }

    /// Live source: suspend, unregister, register on the target, resume.
    fn quick_migration(
        &self,
        v: &PlannedVm,
        target: &str,
    ) -> Result<(String, Option<u32>), StepError> {
        let found = self.locate(&v.vmx);
        if let Some(f) = found
            .iter()
            .find(|f| f.power == VmPower::On && f.host != self.source)
        {
            return self.placed(v, &f.host.clone(), f.vmid);
        }
        if let Some(f) = self.on_source(&found) {
            if f.power == VmPower::On {
                self.step(Op::Suspend, v, self.source, Some(f.vmid), || {
                    self.eng.hosts.suspend(self.source, f.vmid)
                })?;
            }
            self.step(Op::Unregister, v, self.source, Some(f.vmid), || {
                self.eng.hosts.unregister(self.source, f.vmid)
            })?;
        }
        let (host, vmid, known) = self.ensure_registered(v, target, &found)?;
        self.start_if_needed(v, &host, vmid, known)?;
        self.placed(v, &host, vmid)
    }

    /// Live source: guest shutdown within a bound (else power off), unregister, register on the
    /// target, power on.
    fn move_vm(&self, v: &PlannedVm, target: &str) -> Result<(String, Option<u32>), StepError> {
        let found = self.locate(&v.vmx);
        if let Some(f) = found
            .iter()
            .find(|f| f.power == VmPower::On && f.host != self.source)
        {
            return self.placed(v, &f.host.clone(), f.vmid);
        }
        if let Some(f) = self.on_source(&found) {
            let src = self.source;
            let mut power = f.power;
            if power == VmPower::Suspended && v.start {
                // Suspended by an earlier quick_migration attempt: resume, then shut down.
                self.step(Op::PowerOn, v, src, Some(f.vmid), || {
                    self.eng.hosts.power_on(src, f.vmid)
                })?;
                power = VmPower::On;
            }
            if power == VmPower::On {
                let bound = self.eng.opts.shutdown_bound;
                let r = self.step(Op::Shutdown, v, src, Some(f.vmid), || {
                    self.eng.hosts.shutdown_guest(src, f.vmid, bound)
                });
                if let Err(e) = r {
                    if matches!(e.err, OpError::Locked(_)) {
                        return Err(e);
                    }
                    self.step(Op::PowerOff, v, src, Some(f.vmid), || {
                        self.eng.hosts.power_off(src, f.vmid)
                    })?;
                }
            }
            self.step(Op::Unregister, v, src, Some(f.vmid), || {
                self.eng.hosts.unregister(src, f.vmid)
            })?;
        }
        let (host, vmid, known) = self.ensure_registered(v, target, &found)?;
        self.start_if_needed(v, &host, vmid, known)?;
        self.placed(v, &host, vmid)
    }
}

#[cfg(test)]
mod tests;
