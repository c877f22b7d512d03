//! The evacuation report: one JSON record per VM and the host's result, judged by the rules of
//! the issue: a VM that should move and could not (failed, unplaced, or on a datastore no other
//! host sees) makes the result `error`; evacuating a host in maintenance is a `warning`; hold,
//! unmanaged, `restart = never` and out-of-scope VMs have no effect.
//!
//! JSON (`reports/HOST.json`, `notify_command`'s stdin):
//! `{"host", "mode", "result", "reason", "fence", "started_ms", "finished_ms", "seconds",
//! "warnings": [..], "vms": [{"name", "source", "target", "method", "reason", "tried":
//! [{"method", "error", "seconds"}], "state", "vmid", "started_ms", "seconds"}]}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::run_bounded;
use super::inventory::Method;
use super::state::StateDir;
use crate::protocol::log;

/// How long `notify_command` may take.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// One method attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// The method.
    pub method: Method,
    /// Why it failed or was skipped (null when it worked).
    pub error: Option<String>,
    /// How long it took.
    pub seconds: f64,
}

/// What became of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Moved (and started if it was running), or found already running elsewhere.
    Done,
    /// Should have moved, every method failed.
    Failed,
    /// Should move but the plan found no place for it.
    Unplaced,
    /// Left alone on purpose (`reason` says why).
    Skipped,
    /// Not attempted because the evacuation stopped before (unconfirmed fence, …).
    NotMoved,
}

/// One VM's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmReport {
    /// Display name.
    pub name: String,
    /// The evacuated host.
    pub source: String,
    /// Where it is now (or was planned to go).
    pub target: Option<String>,
    /// The method that worked (else the first planned one).
    pub method: Option<Method>,
    /// Why skipped, unplaced or failed; else null.
    pub reason: Option<String>,
    /// Attempts in order.
    pub tried: Vec<Tried>,
    /// Final state.
    pub state: VmState,
    /// vmid on the target.
    pub vmid: Option<u32>,
    /// When its move started (Unix ms).
    pub started_ms: Option<u64>,
    /// How long its move took.
    pub seconds: f64,
}

/// The host's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostResult {
    /// Everything that should move moved.
    Ok,
    /// Done, with warnings (e.g. a host in maintenance).
    Warning,
    /// Something that should move did not, or the evacuation was refused.
    Error,
}

impl HostResult {
    /// `ok`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostResult::Ok => "ok",
            HostResult::Warning => "warning",
            HostResult::Error => "error",
        }
    }
}

/// The report of one evacuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The evacuated host.
    pub host: String,
    /// `rescue` (dead host) or `planned` (live host).
    pub mode: String,
    /// Result.
    pub result: HostResult,
    /// Why the evacuation stopped or was refused (null otherwise).
    pub reason: Option<String>,
    /// How the fence was confirmed (`bmc`, `bmc: already off`, `admin`), null when none.
    pub fence: Option<String>,
    /// Start (Unix ms).
    pub started_ms: u64,
    /// End (Unix ms).
    pub finished_ms: u64,
    /// Duration.
    pub seconds: f64,
    /// Warnings.
    pub warnings: Vec<String>,
    /// One record per VM the host showed.
    pub vms: Vec<VmReport>,
}

/// True for a skip reason that still makes the result an error (the VM should move but its
/// datastore is seen by no other host).
pub fn skip_is_error(reason: &str) -> bool {
    reason.starts_with("local datastore")
}

impl Report {
    /// Sets `result` by the rules; `maintenance` when the source host is in maintenance.
    pub fn judge(&mut self, maintenance: bool) {
        let bad_vm = self.vms.iter().any(|v| match v.state {
            VmState::Failed | VmState::Unplaced | VmState::NotMoved => true,
            VmState::Skipped => v.reason.as_deref().is_some_and(skip_is_error),
            VmState::Done => false,
        });
        self.result = if bad_vm || self.reason.is_some() {
            HostResult::Error
        } else if maintenance || !self.warnings.is_empty() {
            HostResult::Warning
        } else {
            HostResult::Ok
        };
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One line for logs and stderr.
    pub fn summary(&self) -> String {
        let count = |s: VmState| self.vms.iter().filter(|v| v.state == s).count();
        let mut line = format!(
            "evacuation of {} ({}): {}: {} moved, {} failed, {} unplaced, {} skipped",
            self.host,
            self.mode,
            self.result.as_str(),
            count(VmState::Done),
            count(VmState::Failed),
            count(VmState::Unplaced),
            count(VmState::Skipped),
        );
        if let Some(r) = &self.reason {
            line.push_str(&format!("; {r}"));
        }
        line
    }

    /// The reasons the result is an error, one line each (for stderr).
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.reason.iter().cloned().collect();
        for v in &self.vms {
            let bad = match v.state {
                VmState::Failed | VmState::Unplaced => true,
                VmState::Skipped => v.reason.as_deref().is_some_and(skip_is_error),
                _ => false,
            };
            if bad {
                out.push(format!(
                    "{}: {}",
                    v.name,
                    v.reason.as_deref().unwrap_or("could not move")
                ));
            }
        }
        out
    }
}

/// Writes the report to the state directory, logs its summary to syslog and hands it to
/// `notify_command` (JSON on stdin, bounded by [`NOTIFY_TIMEOUT`]). Returns the problems met
/// (never fatal: the evacuation is done whatever happens here).
pub fn deliver(report: &Report, state: &StateDir, notify: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    let json = report.to_json();
    if let Err(e) = state.save_report(&report.host, &json) {
        problems.push(format!("report not saved: {e}"));
    }
    match report.result {
        HostResult::Ok => log::debug(&report.summary()),
        HostResult::Warning => log::warn(&report.summary()),
        HostResult::Error => log::error(&report.summary()),
    }
    if let Some(cmd) = notify.filter(|c| !c.trim().is_empty()) {
        if let Err(e) = run_bounded(cmd, Some(json.as_bytes()), NOTIFY_TIMEOUT) {
            let msg = format!("notify_command: {e}");
            log::warn(&msg);
            problems.push(msg);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    fn vm(state: VmState, reason: Option<&str>) -> VmReport {
        VmReport {
            name: "a".into(),
            source: "esx1".into(),
            target: None,
            method: None,
            reason: reason.map(str::to_string),
            tried: Vec::new(),
            state,
            vmid: None,
            started_ms: None,
            seconds: 0.0,
        }
    }

    fn report(vms: Vec<VmReport>) -> Report {
        Report {
            host: "esx1".into(),
            mode: "rescue".into(),
            result: HostResult::Ok,
            reason: None,
            fence: None,
            started_ms: 0,
            finished_ms: 0,
            seconds: 0.0,
            warnings: Vec::new(),
            vms,
        }
    }

    #[test]
    fn result_rules() {
        let mut r = report(vec![
            vm(VmState::Done, None),
            vm(VmState::Skipped, Some("hold")),
        ]);
        r.judge(false);
        assert_eq!(r.result, HostResult::Ok);
        r.judge(true);
        assert_eq!(r.result, HostResult::Warning);
        let mut r = report(vec![vm(VmState::Skipped, Some("local datastore ds9"))]);
        r.judge(false);
        assert_eq!(r.result, HostResult::Error);
        let mut r = report(vec![vm(VmState::Failed, Some("locked"))]);
        r.judge(true);
        assert_eq!(r.result, HostResult::Error);
        assert_eq!(r.problems(), ["a: locked"]);
        let json = r.to_json();
        assert!(json.contains("\"result\": \"error\""), "{json}");
        assert!(json.contains("\"state\": \"failed\""), "{json}");
    }

    #[test]
    fn delivered_to_state_and_notify() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let out = dir.path().join("notified.json");
        let r = report(vec![vm(VmState::Done, None)]);
        let cmd = format!("cat > '{}'", out.display());
        assert!(deliver(&r, &sd, Some(&cmd)).is_empty());
        let got: Report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got, r);
        assert!(sd.last_report("esx1").is_some());
        assert_eq!(deliver(&r, &sd, Some("exit 3")).len(), 1);
    }
}
