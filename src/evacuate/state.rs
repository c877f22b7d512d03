//! The state directory (`--state-dir`, default [`DEFAULT_STATE_DIR`]):
//!
//! ```text
//! lock                      flock: one active engine (run, watch, return) per directory
//! journal.jsonl             the journal (see journal.rs)
//! snapshots/HOST.json       each host's last good probe (HostSnapshot)
//! hosts/HOST.json           probe history: consecutive failures, last probe, evacuated flag
//! confirmed/HOST.json       an administrator's confirm-down of HOST
//! evacuations/HOST.json     the evacuation of HOST in progress or last done, with the source
//!                           snapshot it started from
//! reports/HOST.json         the last report for HOST; reports/HOST-<ms>.json every report
//! ```
//!
//! Every JSON file is written to a temporary name, fsynced and renamed, so a reader (or an
//! engine started after a crash) sees the old or the new version, never half of one. Host names
//! are escaped for file names (`%XX` for anything but letters, digits, `.`, `_`, `-`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::journal::{now_ms, Journal};
use super::snapshot::{HostSnapshot, Snapshots};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/fencekit/evacuate";

/// One probe's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// When (Unix ms).
    pub at_ms: u64,
    /// SSH + getallvms answered.
    pub ssh_ok: bool,
    /// BMC chassis power (`on`/`off`), when it answered.
    #[serde(default)]
    pub bmc_power: Option<String>,
    /// What failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A host's probe history and evacuation flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// Consecutive failed probes.
    #[serde(default)]
    pub failures: u32,
    /// When its first failed probe since the last `return` was (Unix ms): from then on the
    /// host counts as failed (for the brake) until `return`, even if later probes are good.
    #[serde(default)]
    pub failed_since_ms: Option<u64>,
    /// Last probe.
    #[serde(default)]
    pub last_probe: Option<ProbeRecord>,
    /// Last good probe (Unix ms): the host was alive then.
    #[serde(default)]
    pub last_seen_alive_ms: Option<u64>,
    /// An evacuation of this host was started; it stays failed until `return`.
    #[serde(default)]
    pub evacuated: bool,
}

impl HostState {
    /// Failed: from its first failed probe (or its evacuation) until `return`.
    pub fn failed(&self) -> bool {
        self.failures > 0 || self.evacuated || self.failed_since_ms.is_some()
    }
}

/// An administrator's confirmation that a host is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// When it was given (Unix ms).
    pub at_ms: u64,
    /// Who (the local user name when known).
    #[serde(default)]
    pub by: Option<String>,
}

/// The evacuation of a host: in progress (`finished_ms` none) or the last one done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evacuation {
    /// The host.
    pub host: String,
    /// `rescue` (dead host) or `planned` (live host).
    pub mode: String,
    /// Start (Unix ms).
    pub started_ms: u64,
    /// End (Unix ms), when finished.
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// Result when finished (`ok`, `warning`, `error`).
    #[serde(default)]
    pub result: Option<String>,
    /// What the host showed when the evacuation started: the VMs to move, even once the live
    /// host no longer lists the ones already moved.
    pub source: HostSnapshot,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// Holds the engine lock until dropped.
#[derive(Debug)]
pub struct EngineLock {
    _lock: Flock<File>,
}

impl StateDir {
    /// The directory at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, sub: &str) -> Result<PathBuf, String> {
        let p = if sub.is_empty() {
            self.root.clone()
        } else {
            self.root.join(sub)
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&p)
            .map_err(|e| format!("state directory {}: {e}", p.display()))?;
        Ok(p)
    }

    /// Takes the engine lock without waiting; an error names the reason (another engine).
    pub fn lock(&self) -> Result<EngineLock, String> {
        let path = self.dir("")?.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            format!(
                "another vm-evacuate engine is active on {} ({e})",
                self.root.display()
            )
        })?;
        Ok(EngineLock { _lock: lock })
    }

    /// The journal.
    pub fn journal(&self) -> Result<Journal, String> {
        Ok(Journal::new(&self.dir("")?.join("journal.jsonl")))
    }

    /// The journal for reading only (the directory is not created).
    pub fn journal_ro(&self) -> Journal {
        Journal::new(&self.root.join("journal.jsonl"))
    }

    fn write_json<T: Serialize>(&self, sub: &str, name: &str, value: &T) -> Result<(), String> {
        let dir = self.dir(sub)?;
        let text = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
        write_atomic(&dir, name, &text)
    }

    fn read_json<T: DeserializeOwned>(&self, sub: &str, name: &str) -> Option<T> {
        let text = fs::read(self.root.join(sub).join(name)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Stores a host's snapshot.
    pub fn save_snapshot(&self, snap: &HostSnapshot) -> Result<(), String> {
        self.write_json("snapshots", &json_name(&snap.host), snap)
    }

    /// A host's stored snapshot.
    pub fn snapshot(&self, host: &str) -> Option<HostSnapshot> {
        self.read_json("snapshots", &json_name(host))
    }

    /// The stored snapshots of `hosts`.
    pub fn snapshots<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> Snapshots {
        hosts
            .into_iter()
            .filter_map(|h| self.snapshot(h).map(|s| (h.to_string(), s)))
            .collect()
    }

    /// A host's probe history (default when none).
    pub fn host_state(&self, host: &str) -> HostState {
        self.read_json("hosts", &json_name(host))
            .unwrap_or_default()
    }

    /// Stores a host's probe history.
    pub fn save_host_state(&self, host: &str, st: &HostState) -> Result<(), String> {
        self.write_json("hosts", &json_name(host), st)
    }

    /// Records an administrator's confirmation that `host` is down.
    pub fn confirm_down(&self, host: &str) -> Result<Confirmation, String> {
        let c = Confirmation {
            at_ms: now_ms(),
            by: std::env::var("SUDO_USER")
                .ok()
                .or_else(|| std::env::var("USER").ok()),
        };
        self.write_json("confirmed", &json_name(host), &c)?;
        Ok(c)
    }

    /// An administrator's confirmation for `host`, if any.
    pub fn confirmation(&self, host: &str) -> Option<Confirmation> {
        self.read_json("confirmed", &json_name(host))
    }

    /// Removes the confirmation for `host` (on return).
    pub fn clear_confirmation(&self, host: &str) -> Result<(), String> {
        let p = self.root.join("confirmed").join(json_name(host));
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: {e}", p.display()))
            }
            _ => Ok(()),
        }
    }

    /// The evacuation record of `host`.
    pub fn evacuation(&self, host: &str) -> Option<Evacuation> {
        self.read_json("evacuations", &json_name(host))
    }

    /// Stores the evacuation record of `host`.
    pub fn save_evacuation(&self, ev: &Evacuation) -> Result<(), String> {
        self.write_json("evacuations", &json_name(&ev.host), ev)
    }

    /// Every evacuation record.
    pub fn evacuations(&self) -> Vec<Evacuation> {
        let Ok(rd) = fs::read_dir(self.root.join("evacuations")) else {
            return Vec::new();
        };
        let mut out: Vec<Evacuation> = rd
            .filter_map(Result::ok)
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|t| serde_json::from_slice(&t).ok())
            .collect();
        out.sort_by(|a: &Evacuation, b| a.host.cmp(&b.host));
        out
    }

    /// Stores a report (JSON text) for `host`: `reports/HOST.json` (the last) and
    /// `reports/HOST-<ms>.json`; returns the path of the latter.
    pub fn save_report(&self, host: &str, json: &str) -> Result<PathBuf, String> {
        let dir = self.dir("reports")?;
        let stamped = format!("{}-{}.json", escape(host), now_ms());
        write_atomic(&dir, &stamped, json.as_bytes())?;
        write_atomic(&dir, &json_name(host), json.as_bytes())?;
        Ok(dir.join(stamped))
    }

    /// The last report for `host` (JSON text).
    pub fn last_report(&self, host: &str) -> Option<String> {
        fs::read_to_string(self.root.join("reports").join(json_name(host))).ok()
    }
}

/// `HOST.json`, escaped.
fn json_name(host: &str) -> String {
    format!("{}.json", escape(host))
}

/// Escapes a host name for a file name.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "%2E");
    }
    out
}

/// Writes `data` to `dir/name` through a temporary file, fsync and rename.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), String> {
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let dest = dir.join(name);
    let r = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, &dest)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    r.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: {e}", dest.display())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    #[test]
    fn round_trips_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path().join("st"));
        let mut s = HostSnapshot::new("esx/1");
        s.memory_mb = Some(1024);
        sd.save_snapshot(&s).unwrap();
        assert_eq!(sd.snapshot("esx/1"), Some(s));
        assert!(dir.path().join("st/snapshots/esx%2F1.json").exists());
        let mut h = sd.host_state("esx2");
        assert!(!h.failed());
        h.failures = 1;
        sd.save_host_state("esx2", &h).unwrap();
        assert!(sd.host_state("esx2").failed());
        assert!(sd.confirmation("esx2").is_none());
        sd.confirm_down("esx2").unwrap();
        assert!(sd.confirmation("esx2").is_some());
        sd.clear_confirmation("esx2").unwrap();
        assert!(sd.confirmation("esx2").is_none());
        let l = sd.lock().unwrap();
        assert!(sd.lock().is_err());
        drop(l);
        assert!(sd.lock().is_ok());
        sd.save_report("esx2", "{}").unwrap();
        assert_eq!(sd.last_report("esx2").as_deref(), Some("{}"));
        assert_eq!(escape(".x y"), "%2Ex%20y");
    }
}
