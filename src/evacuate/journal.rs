//! The journal: append-only JSON lines, one intent record before every side effect and one
//! outcome record after it, each written and fsynced before the engine goes on.
//!
//! The journal is for audit, attempt counts and reports. It never decides on its own whether a
//! VM was registered or started: the engine reads that from the live hosts (a record without
//! its outcome means "the effect is unknown, look").

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// An evacuation of `host` starts (mode in `detail`).
    Start,
    /// BMC hard power-off of `host`.
    Fence,
    /// An administrator's `confirm-down` of `host`.
    ConfirmDown,
    /// `solo/registervm` of `vmx` on `target`.
    Register,
    /// Power-on (or resume) of `vmx` on `target`.
    PowerOn,
    /// Hard power-off of `vmx` on `target`.
    PowerOff,
    /// Guest shutdown of `vmx` on `target`.
    Shutdown,
    /// Suspend of `vmx` on `target`.
    Suspend,
    /// Unregister of `vmx` from `target`.
    Unregister,
    /// Autostart removed for `vmx` on `target`.
    AutostartOff,
    /// The evacuation of `host` ended (result in `detail`).
    Finish,
    /// `host` was returned (trusted again).
    Return,
}

impl Op {
    /// The name used in the journal (`register`, `power_on`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Fence => "fence",
            Op::ConfirmDown => "confirm_down",
            Op::Register => "register",
            Op::PowerOn => "power_on",
            Op::PowerOff => "power_off",
            Op::Shutdown => "shutdown",
            Op::Suspend => "suspend",
            Op::Unregister => "unregister",
            Op::AutostartOff => "autostart_off",
            Op::Finish => "finish",
            Op::Return => "return",
        }
    }
}

/// Intent, or outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// About to do it.
    Intent,
    /// Done.
    Done,
    /// Failed (`error` says why).
    Failed,
    /// An intent left without its outcome (the engine was stopped in between), closed on the
    /// next start with what the live hosts showed then (`detail`).
    Reconciled,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix time, milliseconds.
    pub ts_ms: u64,
    /// The host being evacuated (or returned).
    pub host: String,
    /// Operation.
    pub op: Op,
    /// Phase.
    pub phase: Phase,
    /// VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// VM vmx path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmx: Option<String>,
    /// Host the operation runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// vmid on `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Free text (mode, result, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// A record for `host` with the other fields empty.
    pub fn new(host: &str, op: Op, phase: Phase) -> Self {
        Record {
            ts_ms: now_ms(),
            host: host.to_string(),
            op,
            phase,
            vm: None,
            vmx: None,
            target: None,
            vmid: None,
            detail: None,
            error: None,
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// True when `f` is not empty and does not end with a newline.
fn ends_torn(f: &mut File) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    if len == 0 || f.seek(SeekFrom::End(-1)).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    f.read_exact(&mut b).is_ok() && b != [b'\n']
}

/// The intents among `records` that have no outcome record after them (same operation, VM and
/// target).
pub fn open_intents(records: &[Record]) -> Vec<Record> {
    let mut open: Vec<Record> = Vec::new();
    for r in records {
        if r.phase == Phase::Intent {
            open.push(r.clone());
        } else {
            open.retain(|o| !(o.op == r.op && o.vmx == r.vmx && o.target == r.target));
        }
    }
    open
}

/// The append-only journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Journal {
    /// The journal at `path` (opened on first append).
    pub fn new(path: &Path) -> Self {
        Journal {
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `rec` and fsyncs it.
    pub fn append(&self, rec: &Record) -> Result<(), String> {
        let mut line = serde_json::to_string(rec).map_err(|e| e.to_string())?;
        line.push('\n');
        let mut g = self
            .file
            .lock()
            .map_err(|_| "journal lock poisoned".to_string())?;
        if g.is_none() {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&self.path)
                .map_err(|e| format!("journal {}: {e}", self.path.display()))?;
            // A torn last line (the engine was killed mid-write) is closed first, so that the
            // next record starts on its own line.
            if ends_torn(&mut f) {
                f.write_all(b"\n")
                    .map_err(|e| format!("journal {}: {e}", self.path.display()))?;
            }
            *g = Some(f);
        }
        let f = g.as_mut().ok_or_else(|| "journal not open".to_string())?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| format!("journal {}: {e}", self.path.display()))
    }

    /// Every readable record, in order (a torn last line is ignored).
    pub fn read(&self) -> Vec<Record> {
        let Ok(f) = File::open(&self.path) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// The records about `host` since it was last returned.
    pub fn since_return(&self, host: &str) -> Vec<Record> {
        let all: Vec<Record> = self.read().into_iter().filter(|r| r.host == host).collect();
        let start = all
            .iter()
            .rposition(|r| r.op == Op::Return && r.phase == Phase::Done)
            .map_or(0, |i| i + 1);
        all.into_iter().skip(start).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    #[test]
    fn append_read_and_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(&dir.path().join("journal.jsonl"));
        let mut r = Record::new("esx1", Op::Register, Phase::Intent);
        r.vmx = Some("[ds] a/a.vmx".into());
        j.append(&r).unwrap();
        j.append(&Record::new("esx1", Op::Return, Phase::Done))
            .unwrap();
        j.append(&Record::new("esx1", Op::Fence, Phase::Intent))
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .unwrap()
            .write_all(b"{\"ts_ms\":1,\"host")
            .unwrap();
        let j = Journal::new(j.path());
        j.append(&Record::new("esx1", Op::Finish, Phase::Done))
            .unwrap();
        let all = j.read();
        assert_eq!(all.len(), 4);
        assert_eq!(all.first(), Some(&r));
        let since = j.since_return("esx1");
        assert_eq!(since.len(), 2);
        assert_eq!(since.first().map(|r| r.op), Some(Op::Fence));
    }
}
