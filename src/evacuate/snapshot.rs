//! What a host last showed: its VMs (name, vmid, vmx path, datastore, power state, memory),
//! its memory and the datastores it sees. A snapshot is refreshed by every good probe and
//! stored as JSON; once the host is dead, its last snapshot is what says what ran there.
//!
//! Datastore visibility is derived from snapshots only: a host sees a datastore when its
//! snapshot lists it in `datastores` or one of its VMs lives on it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::device::vimcmd;

/// A VM's power state as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmPower {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Suspended (not running; its memory is on disk).
    Suspended,
}

/// `powered on`, `powered off`, `suspended`: the state in a message.
impl std::fmt::Display for VmPower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VmPower::On => "powered on",
            VmPower::Off => "powered off",
            VmPower::Suspended => "suspended",
        })
    }
}

impl From<vimcmd::VmPower> for VmPower {
    fn from(p: vimcmd::VmPower) -> Self {
        match p {
            vimcmd::VmPower::On => VmPower::On,
            vimcmd::VmPower::Off => VmPower::Off,
            vimcmd::VmPower::Suspended => VmPower::Suspended,
        }
    }
}

/// One VM registered on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    /// Display name.
    pub name: String,
    /// vim-cmd vmid on that host.
    pub vmid: u32,
    /// Configuration file, `[datastore] dir/name.vmx` (its identity across hosts).
    pub vmx: String,
    /// Datastore the vmx is on.
    pub datastore: String,
    /// Power state.
    pub power: VmPower,
    /// Configured memory, MB, when the host reported it.
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

impl VmRecord {
    /// A record from a `getallvms` row, its power state and (optionally) its memory; the
    /// datastore is taken from the vmx path (empty when the path has no `[datastore]`).
    pub fn from_vimcmd(vm: &vimcmd::Vm, power: vimcmd::VmPower, memory_mb: Option<u64>) -> Self {
        VmRecord {
            name: vm.name.clone(),
            vmid: vm.vmid,
            vmx: vm.file.clone(),
            datastore: datastore_of(&vm.file).unwrap_or_default().to_string(),
            power: power.into(),
            memory_mb,
        }
    }
}

/// A host's last good probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSnapshot {
    /// Inventory name of the host.
    pub host: String,
    /// When it was taken (Unix seconds; 0 when unknown).
    #[serde(default)]
    pub taken_at: u64,
    /// Memory for VMs, MB, as the host reported it (used when the inventory gives none).
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Datastores the host sees (besides those its VMs are on).
    #[serde(default)]
    pub datastores: Vec<String>,
    /// Registered VMs.
    #[serde(default)]
    pub vms: Vec<VmRecord>,
}

impl HostSnapshot {
    /// An empty snapshot of `host`.
    pub fn new(host: impl Into<String>) -> Self {
        HostSnapshot {
            host: host.into(),
            taken_at: 0,
            memory_mb: None,
            datastores: Vec::new(),
            vms: Vec::new(),
        }
    }

    /// Every datastore the host sees: those listed and those its VMs are on.
    pub fn visible_datastores(&self) -> BTreeSet<&str> {
        self.datastores
            .iter()
            .map(String::as_str)
            .chain(self.vms.iter().map(|v| v.datastore.as_str()))
            .filter(|d| !d.is_empty())
            .collect()
    }

    /// True when the host sees `datastore`.
    pub fn sees(&self, datastore: &str) -> bool {
        !datastore.is_empty()
            && (self.datastores.iter().any(|d| d == datastore)
                || self.vms.iter().any(|v| v.datastore == datastore))
    }
}

/// A host's memory in MB from its `hostsvc/hostsummary` (`hardware.memorySize`, bytes), for
/// [`HostSnapshot::memory_mb`].
pub fn memory_mb_of(summary: &vimcmd::HostSummary) -> Option<u64> {
    summary
        .memory_size
        .map(|bytes| bytes / (1024 * 1024))
        .filter(|&mb| mb > 0)
}

/// Snapshots by host name (one per host; ordered, so iteration is deterministic).
pub type Snapshots = BTreeMap<String, HostSnapshot>;

/// The datastore of a vmx path `[datastore] dir/name.vmx`, or of a mounted path
/// `/vmfs/volumes/datastore/dir/name.vmx`.
pub fn datastore_of(vmx: &str) -> Option<&str> {
    let t = vmx.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']')?;
        let ds = rest.get(..end)?.trim();
        return (!ds.is_empty()).then_some(ds);
    }
    let rest = t.strip_prefix("/vmfs/volumes/")?;
    let ds = rest.split('/').next()?;
    (!ds.is_empty()).then_some(ds)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    #[test]
    fn datastore_from_vmx_paths() {
        assert_eq!(
            datastore_of("[ds-shared1] web1/web1.vmx"),
            Some("ds-shared1")
        );
        assert_eq!(datastore_of("[ datastore 2 ] a/a.vmx"), Some("datastore 2"));
        assert_eq!(datastore_of("/vmfs/volumes/ds1/a/a.vmx"), Some("ds1"));
        assert_eq!(datastore_of("[] a.vmx"), None);
        assert_eq!(datastore_of("a/a.vmx"), None);
    }

    #[test]
    fn host_memory_from_hostsummary() {
        let mut h = vimcmd::HostSummary::default();
        assert_eq!(memory_mb_of(&h), None);
        h.memory_size = Some(274_877_906_944); // 256 GiB
        assert_eq!(memory_mb_of(&h), Some(262_144));
        h.memory_size = Some(1000);
        assert_eq!(memory_mb_of(&h), None);
    }

    #[test]
    fn json_round_trip_and_visibility() {
        let mut s = HostSnapshot::new("esx1");
        s.memory_mb = Some(65536);
        s.datastores = vec!["ds-iso".into()];
        let vm = vimcmd::Vm {
            vmid: 7,
            name: "web1".into(),
            file: "[ds-shared1] web1/web1.vmx".into(),
            guest_os: "rhel8_64Guest".into(),
            version: "vmx-19".into(),
            annotation: String::new(),
        };
        s.vms
            .push(VmRecord::from_vimcmd(&vm, vimcmd::VmPower::On, Some(4096)));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""power":"on""#), "{json}");
        let back: HostSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(s.sees("ds-shared1") && s.sees("ds-iso") && !s.sees("ds-other"));
        assert_eq!(
            s.visible_datastores().into_iter().collect::<Vec<_>>(),
            ["ds-iso", "ds-shared1"]
        );
        // Optional fields may be missing in stored JSON.
        let min: HostSnapshot = serde_json::from_str(r#"{"host":"esx2"}"#).unwrap();
        assert_eq!(min, HostSnapshot::new("esx2"));
    }
}
