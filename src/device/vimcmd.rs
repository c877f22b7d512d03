//! ESXi `vim-cmd` layer: command builders and parsers for what `vim-cmd` prints.
//!
//! Pure functions, no I/O: the transport ([`crate::transport::ssh`]) runs the strings built here and the
//! parsers turn the answers into types. Formats and their provenance are documented in the
//! project's ESXi format reference (getallvms layout, getstate lines, fault blocks in the
//! ESXi 5 and the 6.7+ layouts, registervm/unregister, hostsummary).
//!
//! Rules:
//! - Commands only ever carry a numeric vmid (or a path quoted with [`shell_quote`]): no VM
//!   name, no user text reaches the remote shell. Look a VM up with [`parse_getallvms`] and
//!   [`find_vm`] first.
//! - Every parser maps unknown text to an error, never to a state: [`parse_power_state`]
//!   accepts exactly `Retrieved runtime info` followed by `Powered on`, `Powered off` or
//!   `Suspended`.
//! - Parsers never panic, whatever the input (fuzz-tested).

use std::fmt;

use crate::protocol::error::{excerpt, FenceError};
use crate::transport::ssh::shell_quote;

/// One registered VM, as listed by `vim-cmd vmsvc/getallvms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    /// Numeric VM id (what every other vim-cmd call takes).
    pub vmid: u32,
    /// Display name (may contain blanks, brackets, non-ASCII).
    pub name: String,
    /// Configuration file, `[datastore] dir/name.vmx`.
    pub file: String,
    /// Guest OS identifier, e.g. `rhel8_64Guest`.
    pub guest_os: String,
    /// Virtual hardware version, e.g. `vmx-19`.
    pub version: String,
    /// Annotation; lines joined with `\n`, padding removed.
    pub annotation: String,
}

/// Power state as `vim-cmd vmsvc/power.getstate` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmPower {
    /// `Powered on`.
    On,
    /// `Powered off`.
    Off,
    /// `Suspended` (not running; its memory is on disk).
    Suspended,
}

/// A vmodl fault block printed by vim-cmd, e.g. `(vim.fault.NotFound) { ... msg = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Fault type, e.g. `vim.fault.NotFound`.
    pub name: String,
    /// The `msg` field (empty if the block has none).
    pub msg: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.msg.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}: {}", self.name, self.msg)
        }
    }
}

/// Why vim-cmd output could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// vim-cmd printed a fault block.
    #[error("vim-cmd failed: {0}")]
    Fault(Fault),
    /// vim-cmd reported a failure line such as `Power off failed`.
    #[error("vim-cmd failed: {0}")]
    Failed(String),
    /// The output is not what this command prints.
    #[error("unrecognised vim-cmd output: {0}")]
    Unrecognised(String),
}

impl From<ParseError> for FenceError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Fault(_) | ParseError::Failed(_) => FenceError::Device(e.to_string()),
            ParseError::Unrecognised(_) => FenceError::Status(e.to_string()),
        }
    }
}

/// Why a plug could not be resolved to one VM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No VM has this name or vmid.
    #[error("VM {0:?} not found on the host")]
    NotFound(String),
    /// Several VMs match.
    #[error("VM name {plug:?} is ambiguous (vmids {vmids:?}); use the vmid as plug")]
    Ambiguous {
        /// The plug as given.
        plug: String,
        /// Every matching vmid.
        vmids: Vec<u32>,
    },
}

impl From<LookupError> for FenceError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NotFound(_) => FenceError::PlugNotFound(e.to_string()),
            LookupError::Ambiguous { .. } => FenceError::Usage(e.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Command builders: numeric ids only.

/// `vim-cmd vmsvc/getallvms`.
pub fn getallvms() -> String {
    "vim-cmd vmsvc/getallvms".to_owned()
}

/// `vim-cmd vmsvc/power.getstate N`.
pub fn power_getstate(vmid: u32) -> String {
    format!("vim-cmd vmsvc/power.getstate {vmid}")
}

/// `vim-cmd vmsvc/power.on N`.
pub fn power_on(vmid: u32) -> String {
    format!("vim-cmd vmsvc/power.on {vmid}")
}

/// `vim-cmd vmsvc/power.off N` (hard power-off).
pub fn power_off(vmid: u32) -> String {
    format!("vim-cmd vmsvc/power.off {vmid}")
}

/// `vim-cmd vmsvc/power.reset N` (hard reset).
pub fn power_reset(vmid: u32) -> String {
    format!("vim-cmd vmsvc/power.reset {vmid}")
}

/// `vim-cmd vmsvc/power.shutdown N` (guest shutdown request; needs VMware Tools).
pub fn power_shutdown(vmid: u32) -> String {
    format!("vim-cmd vmsvc/power.shutdown {vmid}")
}

/// `vim-cmd vmsvc/unregister N`.
pub fn unregister(vmid: u32) -> String {
    format!("vim-cmd vmsvc/unregister {vmid}")
}

/// `vim-cmd solo/registervm '<path>' ['<name>']`, both shell-quoted.
pub fn registervm(vmx_path: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!(
            "vim-cmd solo/registervm {} {}",
            shell_quote(vmx_path),
            shell_quote(n)
        ),
        None => format!("vim-cmd solo/registervm {}", shell_quote(vmx_path)),
    }
}

/// `vmware -v`: the cheapest command that proves the shell and the tools answer (for
/// `monitor`).
pub fn host_version() -> String {
    "vmware -v".to_owned()
}

/// Parses `vmware -v` (`VMware ESXi 8.0.3 build-24022510`).
pub fn parse_host_version(out: &str) -> Result<String, ParseError> {
    let mut it = lines(out).map(str::trim).filter(|l| !l.is_empty());
    match (it.next(), it.next()) {
        (Some(l), None) if l.starts_with("VMware ESXi ") => Ok(l.to_owned()),
        _ => Err(ParseError::Unrecognised(excerpt(out))),
    }
}

/// `vim-cmd hostsvc/hostsummary`.
pub fn hostsummary() -> String {
    "vim-cmd hostsvc/hostsummary".to_owned()
}

// ---------------------------------------------------------------------------------------------
// Parsers.

/// Short, printable excerpt of untrusted text for error messages.
fn lines(out: &str) -> impl Iterator<Item = &str> {
    out.lines().map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Finds the first fault block (`(vim.fault.X) {` or `(vmodl.fault.X) {`) and its `msg`.
pub fn parse_fault(out: &str) -> Option<Fault> {
    let mut it = lines(out);
    let name = it.by_ref().find_map(|l| {
        let t = l.trim();
        let body = t.strip_prefix('(')?;
        if !(body.starts_with("vim.fault.") || body.starts_with("vmodl.fault.")) {
            return None;
        }
        let (name, _) = body.split_once(')')?;
        Some(name.to_owned())
    })?;
    let mut msg = String::new();
    for l in it {
        let t = l.trim();
        if t == "}" {
            break;
        }
        if let Some(v) = t.strip_prefix("msg = ") {
            let v = v.trim_end().trim_end_matches(',').trim_end();
            msg = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned();
            break;
        }
    }
    Some(Fault { name, msg })
}

/// Parses `vim-cmd vmsvc/power.getstate N`: exactly `Retrieved runtime info` then one of
/// `Powered on`, `Powered off`, `Suspended`. A fault block or anything else is an error.
pub fn parse_power_state(out: &str) -> Result<VmPower, ParseError> {
    if let Some(f) = parse_fault(out) {
        return Err(ParseError::Fault(f));
    }
    let mut it = lines(out).map(str::trim).filter(|l| !l.is_empty());
    let (Some("Retrieved runtime info"), Some(state), None) = (it.next(), it.next(), it.next())
    else {
        return Err(ParseError::Unrecognised(excerpt(out)));
    };
    match state {
        "Powered on" => Ok(VmPower::On),
        "Powered off" => Ok(VmPower::Off),
        "Suspended" => Ok(VmPower::Suspended),
        _ => Err(ParseError::Unrecognised(excerpt(out))),
    }
}

/// Checks the output of `power.on/off/reset/shutdown/reboot/suspend`: a fault block or a
/// `... failed` line is an error. `Ok` does not prove the change happened: read the state back.
pub fn check_power_op(out: &str) -> Result<(), ParseError> {
    if let Some(f) = parse_fault(out) {
        return Err(ParseError::Fault(f));
    }
    if let Some(l) = lines(out)
        .map(str::trim)
        .find(|l| l.ends_with(" failed") || l.starts_with("Insufficient arguments"))
    {
        return Err(ParseError::Failed(excerpt(l)));
    }
    Ok(())
}

/// Checks the output of `power.reset`, which `method=cycle` takes as the proof of the reset:
/// exactly the `Reset VM:` line; a fault, a `... failed` line or anything else is an error.
pub fn check_reset(out: &str) -> Result<(), ParseError> {
    check_power_op(out)?;
    let ls: Vec<&str> = lines(out)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if ls == ["Reset VM:"] {
        Ok(())
    } else {
        Err(ParseError::Unrecognised(excerpt(out)))
    }
}

/// Parses `vim-cmd solo/registervm`: the new vmid (ESXi 6+), `None` for the silent success
/// of ESXi 5, a fault or anything else is an error.
pub fn parse_registervm(out: &str) -> Result<Option<u32>, ParseError> {
    if let Some(f) = parse_fault(out) {
        return Err(ParseError::Fault(f));
    }
    let t = out.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u32>()
        .map(Some)
        .map_err(|_| ParseError::Unrecognised(excerpt(out)))
}

/// Parses `vim-cmd vmsvc/unregister N`: success prints nothing.
pub fn parse_unregister(out: &str) -> Result<(), ParseError> {
    if let Some(f) = parse_fault(out) {
        return Err(ParseError::Fault(f));
    }
    if out.trim().is_empty() {
        Ok(())
    } else {
        Err(ParseError::Unrecognised(excerpt(out)))
    }
}

/// The few `hostsvc/hostsummary` fields the evacuation engine needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSummary {
    /// `hardware.memorySize`, bytes.
    pub memory_size: Option<u64>,
    /// `hardware.numCpuCores`.
    pub num_cpu_cores: Option<u32>,
    /// `hardware.cpuMhz`, per core.
    pub cpu_mhz: Option<u32>,
    /// `quickStats.overallMemoryUsage`, MiB.
    pub overall_memory_usage_mb: Option<u64>,
    /// `quickStats.overallCpuUsage`, MHz.
    pub overall_cpu_usage_mhz: Option<u64>,
}

/// Parses `vim-cmd hostsvc/hostsummary` (field order and completeness not assumed).
pub fn parse_hostsummary(out: &str) -> Result<HostSummary, ParseError> {
    if let Some(f) = parse_fault(out) {
        return Err(ParseError::Fault(f));
    }
    if !lines(out).any(|l| l.trim_start().starts_with("(vim.host.Summary) {")) {
        return Err(ParseError::Unrecognised(excerpt(out)));
    }
    let mut s = HostSummary::default();
    for l in lines(out) {
        let Some((k, v)) = l.trim().split_once(" = ") else {
            continue;
        };
        let v = v.trim_end().trim_end_matches(',').trim();
        match k {
            "memorySize" => s.memory_size = v.parse().ok(),
            "numCpuCores" => s.num_cpu_cores = v.parse().ok(),
            "cpuMhz" => s.cpu_mhz = v.parse().ok(),
            "overallMemoryUsage" => s.overall_memory_usage_mb = v.parse().ok(),
            "overallCpuUsage" => s.overall_cpu_usage_mhz = v.parse().ok(),
            _ => {}
        }
    }
    Ok(s)
}

/// Is this the getallvms title line (`Vmid Name File Guest OS Version [Annotation]`)?
fn is_header(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    matches!(
        words.as_slice(),
        [
            "Vmid",
            "Name",
            "File",
            "Guest",
            "OS",
            "Version",
            "Annotation"
        ] | ["Vmid", "Name", "File", "Guest", "OS", "Version"]
    )
}

/// Parses `vim-cmd vmsvc/getallvms`.
///
/// Rows are recognised by their structure (vmid, name, `[datastore] path` preceded by the
/// 3-blank column separator, one-word guest id, `vmx-NN`, annotation), not by naive word
/// splitting, so names with blanks or brackets and annotation continuation lines (even ones
/// starting with a number) are handled. `Skipping invalid VM` lines are ignored. Missing title
/// line, a fault block, or a non-row line right after the title is an error.
pub fn parse_getallvms(out: &str) -> Result<Vec<Vm>, ParseError> {
    if let Some(f) = parse_fault(out) {
        return Err(ParseError::Fault(f));
    }
    let mut it = lines(out);
    // Only blank lines and `Skipping invalid VM` notes (stderr merged) may precede the title:
    // anything else (a row, junk) means the output is not what vim-cmd prints, and skipping it
    // would silently drop VMs from the inventory.
    loop {
        match it.next() {
            None => return Err(ParseError::Unrecognised(excerpt(out))),
            Some(l) if is_header(l) => break,
            Some(l) if l.trim().is_empty() || l.starts_with("Skipping invalid VM '") => {}
            Some(l) => return Err(ParseError::Unrecognised(excerpt(l))),
        }
    }
    let mut vms: Vec<Vm> = Vec::new();
    for line in it {
        if line.starts_with("Skipping invalid VM '") {
            continue;
        }
        if let Some(vm) = parse_row(line) {
            if let Some(prev) = vms.last_mut() {
                prev.annotation = prev.annotation.trim_end().to_owned();
            }
            vms.push(vm);
            continue;
        }
        match vms.last_mut() {
            Some(prev) => {
                // Continuation line of a multi-line annotation.
                prev.annotation.push('\n');
                prev.annotation.push_str(line);
            }
            None if line.trim().is_empty() => {}
            None => return Err(ParseError::Unrecognised(excerpt(line))),
        }
    }
    if let Some(prev) = vms.last_mut() {
        prev.annotation = prev.annotation.trim_end().to_owned();
    }
    Ok(vms)
}

/// Parses one getallvms data row, or returns `None` if the line is not one.
fn parse_row(line: &str) -> Option<Vm> {
    let digits_end = line.find(|c: char| !c.is_ascii_digit())?;
    if digits_end == 0 {
        return None;
    }
    let vmid: u32 = line.get(..digits_end)?.parse().ok()?;
    let rest = line.get(digits_end..)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let name_start = digits_end + (rest.len() - rest.trim_start_matches(' ').len());
    for (fi, _) in line.match_indices("   [") {
        let f = fi + 3;
        if f <= name_start {
            continue;
        }
        for (vi, _) in line.match_indices("   vmx-") {
            let v = vi + 3;
            if v <= f {
                continue;
            }
            if let Some(vm) = split_row(line, vmid, name_start, f, v) {
                return Some(vm);
            }
        }
    }
    None
}

fn split_row(line: &str, vmid: u32, name_start: usize, f: usize, v: usize) -> Option<Vm> {
    let name = line.get(name_start..f)?.trim_end();
    if name.is_empty() {
        return None;
    }
    let mid = line.get(f..v)?.trim_end();
    let sep = mid.rfind("   ")?;
    let file = mid.get(..sep)?.trim_end();
    let guest = mid.get(sep..)?.trim();
    if guest.is_empty() || guest.contains(char::is_whitespace) {
        return None;
    }
    let (_, path) = file.strip_prefix('[')?.split_once("] ")?;
    if path.is_empty() || path.starts_with(' ') {
        return None;
    }
    let tail = line.get(v..)?;
    let vend = tail.find(' ').unwrap_or(tail.len());
    let version = tail.get(..vend)?;
    let num = version.strip_prefix("vmx-")?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let annotation = tail.get(vend..)?.trim();
    Some(Vm {
        vmid,
        name: name.to_owned(),
        file: file.to_owned(),
        guest_os: guest.to_owned(),
        version: version.to_owned(),
        annotation: annotation.to_owned(),
    })
}

/// Resolves a plug: the exact VM name, or else a numeric vmid. A name that several VMs share,
/// or a numeric plug that is both one VM's name and another VM's vmid, is ambiguous.
pub fn find_vm<'a>(vms: &'a [Vm], plug: &str) -> Result<&'a Vm, LookupError> {
    let by_name: Vec<&Vm> = vms.iter().filter(|v| v.name == plug).collect();
    let by_id: Option<&Vm> = plug
        .parse::<u32>()
        .ok()
        .filter(|_| plug.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| vms.iter().find(|v| v.vmid == id));
    let mut all: Vec<&Vm> = by_name;
    if let Some(v) = by_id {
        if !all.iter().any(|x| x.vmid == v.vmid) {
            all.push(v);
        }
    }
    match all.as_slice() {
        [one] => Ok(one),
        [] => Err(LookupError::NotFound(plug.to_owned())),
        many => Err(LookupError::Ambiguous {
            plug: plug.to_owned(),
            vmids: many.iter().map(|v| v.vmid).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/esxi/", $name))
        };
    }

    fn names(vms: &[Vm]) -> Vec<(u32, &str)> {
        vms.iter().map(|v| (v.vmid, v.name.as_str())).collect()
    }

    #[test]
    fn getallvms_reference_example() {
        let vms = parse_getallvms(fixture!("getallvms_reference_e1.txt")).unwrap();
        assert_eq!(names(&vms), vec![(1, "cl0"), (4, "node 3 with spaces")]);
        let n3 = vms.get(1).unwrap();
        assert_eq!(
            n3.file,
            "[datastore1] node 3 with spaces/node 3 with spaces.vmx"
        );
        assert_eq!(n3.guest_os, "rhel8_64Guest");
        assert_eq!(n3.version, "vmx-19");
        assert_eq!(n3.annotation, "Cluster node 3\nowner: ha-team");
        assert_eq!(vms.first().unwrap().annotation, "");
    }

    #[test]
    fn getallvms_esxi8_captures() {
        assert_eq!(
            parse_getallvms(fixture!("getallvms_esxi8_no_vms.txt")),
            Ok(vec![])
        );
        assert_eq!(
            parse_getallvms(fixture!("getallvms_esxi9_no_vms.txt")),
            Ok(vec![])
        );
        let vms = parse_getallvms(fixture!("getallvms_esxi8_one_vm.txt")).unwrap();
        assert_eq!(
            vms,
            vec![Vm {
                vmid: 1,
                name: "x8".into(),
                file: "[pve-esx] x8/x8.vmx".into(),
                guest_os: "centos9_64Guest".into(),
                version: "vmx-20".into(),
                annotation: String::new(),
            }]
        );
        let vms = parse_getallvms(fixture!("getallvms_packer_row.txt")).unwrap();
        assert_eq!(names(&vms), vec![(40, "packer-vmware-iso")]);
        assert_eq!(
            vms.first().unwrap().file,
            "[wtgc-vmbd-01:datastore1] packer-vmware-iso/packer-vmware-iso.vmx"
        );
    }

    #[test]
    fn getallvms_default_inventory_traps() {
        let vms = parse_getallvms(fixture!("getallvms_default.txt")).unwrap();
        assert_eq!(
            names(&vms),
            vec![
                (1, "cl0"),
                (2, "cl1"),
                (3, "cl01"),
                (4, "node 3 with spaces"),
                (5, "web [old]"),
                (6, "dbvm"),
                (7, "no-tools"),
                (8, "vm-äöü"),
            ]
        );
        let db = find_vm(&vms, "dbvm").unwrap();
        assert!(db.annotation.contains("\n42 "), "{:?}", db.annotation);
        assert_eq!(
            find_vm(&vms, "web [old]").unwrap().file,
            "[datastore1] web [old]/web [old].vmx"
        );
        assert_eq!(find_vm(&vms, "vm-äöü").unwrap().vmid, 8);
        // With stderr merged in, the Skipping line is ignored.
        let merged = format!(
            "Skipping invalid VM '9'\n{}",
            fixture!("getallvms_default.txt")
        );
        assert_eq!(parse_getallvms(&merged).unwrap().len(), 8);
    }

    #[test]
    fn getallvms_errors() {
        assert!(parse_getallvms("").is_err());
        assert!(parse_getallvms("garbage\n").is_err());
        assert!(matches!(
            parse_getallvms(fixture!("fault_notfound_esxi8.txt")),
            Err(ParseError::Fault(_))
        ));
        let bad = "Vmid   Name   File   Guest OS   Version   Annotation\nzzz\n";
        assert!(parse_getallvms(bad).is_err());
        // Shuffled lines (title not first): an error, not an inventory missing the rows that
        // came before the title.
        let good = fixture!("getallvms_default.txt");
        let mut rows: Vec<&str> = good.lines().collect();
        rows.rotate_left(2);
        assert!(parse_getallvms(&rows.join("\n")).is_err());
        let noted = format!("\nSkipping invalid VM '9'\n{good}");
        assert_eq!(
            parse_getallvms(&noted).unwrap().len(),
            parse_getallvms(good).unwrap().len()
        );
    }

    #[test]
    fn power_states() {
        assert_eq!(
            parse_power_state(fixture!("getstate_on.txt")),
            Ok(VmPower::On)
        );
        assert_eq!(
            parse_power_state(fixture!("getstate_off.txt")),
            Ok(VmPower::Off)
        );
        assert_eq!(
            parse_power_state(fixture!("getstate_suspended.txt")),
            Ok(VmPower::Suspended)
        );
        assert_eq!(
            parse_power_state("Retrieved runtime info\r\nPowered off\r\n"),
            Ok(VmPower::Off)
        );
        for bad in [
            "",
            "Powered off\n",
            "Powered off\nRetrieved runtime info\n",
            "Retrieved runtime info\nPowered offline\n",
            "Retrieved runtime info\nPowered off\nPowered on\n",
            "Retrieved runtime info\npowered OFF\n",
        ] {
            assert!(parse_power_state(bad).is_err(), "{bad:?}");
        }
        match parse_power_state(fixture!("fault_notfound_esxi8.txt")) {
            Err(ParseError::Fault(f)) => {
                assert_eq!(f.name, "vim.fault.NotFound");
                assert_eq!(f.msg, "Unable to find a VM corresponding to \"99\"");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn faults_both_layouts() {
        let f = parse_fault(fixture!("fault_notfound_esxi5.txt")).unwrap();
        assert_eq!(f.name, "vim.fault.NotFound");
        assert_eq!(f.msg, "Unable to find a VM corresponding to \"16\"");
        let f = parse_fault(fixture!("power_on_already_on_esxi8.txt")).unwrap();
        assert_eq!(f.name, "vim.fault.InvalidPowerState");
        assert!(f.msg.contains("(Powered on)"));
        assert_eq!(parse_fault("Powering off VM:\n"), None);
        let f = parse_fault(fixture!("registervm_already_exists.txt")).unwrap();
        assert_eq!(f.name, "vim.fault.AlreadyExists");
    }

    #[test]
    fn power_op_results() {
        assert_eq!(check_power_op("Powering off VM:\n"), Ok(()));
        assert_eq!(check_power_op(""), Ok(()));
        assert!(matches!(
            check_power_op(fixture!("power_off_failed_esxi6.txt")),
            Err(ParseError::Failed(_))
        ));
        assert!(matches!(
            check_power_op(fixture!("power_on_already_on_esxi8.txt")),
            Err(ParseError::Fault(_))
        ));
    }

    #[test]
    fn register_unregister() {
        assert_eq!(parse_registervm("12\n"), Ok(Some(12)));
        assert_eq!(parse_registervm(""), Ok(None));
        assert!(parse_registervm("hello\n").is_err());
        assert!(matches!(
            parse_registervm(fixture!("registervm_already_exists.txt")),
            Err(ParseError::Fault(_))
        ));
        assert_eq!(parse_unregister(""), Ok(()));
        assert!(parse_unregister(fixture!("fault_notfound_esxi8.txt")).is_err());
        assert_eq!(
            registervm("/vmfs/volumes/ds1/a b/it's.vmx", Some("x")),
            "vim-cmd solo/registervm '/vmfs/volumes/ds1/a b/it'\\''s.vmx' 'x'"
        );
        assert_eq!(power_getstate(7), "vim-cmd vmsvc/power.getstate 7");
        assert_eq!(unregister(7), "vim-cmd vmsvc/unregister 7");
    }

    #[test]
    fn host_version_line() {
        assert_eq!(
            parse_host_version("VMware ESXi 8.0.3 build-24022510\n").as_deref(),
            Ok("VMware ESXi 8.0.3 build-24022510")
        );
        assert!(parse_host_version("").is_err());
        assert!(parse_host_version("sh: vmware: not found\n").is_err());
    }

    #[test]
    fn host_summary() {
        let s = parse_hostsummary(fixture!("hostsummary_esxi8.txt")).unwrap();
        assert_eq!(s.memory_size, Some(137_262_243_840));
        assert_eq!(s.num_cpu_cores, Some(16));
        assert_eq!(s.overall_memory_usage_mb, Some(62_806));
        assert!(parse_hostsummary("nothing").is_err());
    }

    #[test]
    fn lookup() {
        let vms = parse_getallvms(fixture!("getallvms_default.txt")).unwrap();
        assert_eq!(find_vm(&vms, "cl0").unwrap().vmid, 1);
        assert_eq!(find_vm(&vms, "cl01").unwrap().vmid, 3);
        assert_eq!(find_vm(&vms, "3").unwrap().name, "cl01");
        assert!(matches!(find_vm(&vms, "cl"), Err(LookupError::NotFound(_))));
        assert!(matches!(
            find_vm(&vms, "node"),
            Err(LookupError::NotFound(_))
        ));
        assert!(matches!(find_vm(&vms, "+3"), Err(LookupError::NotFound(_))));
        let mut dup = vms.clone();
        dup.push(Vm {
            vmid: 20,
            name: "cl0".into(),
            ..vms.first().unwrap().clone()
        });
        dup.push(Vm {
            vmid: 21,
            name: "2".into(),
            ..vms.first().unwrap().clone()
        });
        assert!(matches!(
            find_vm(&dup, "cl0"),
            Err(LookupError::Ambiguous { .. })
        ));
        assert!(matches!(
            find_vm(&dup, "2"),
            Err(LookupError::Ambiguous { .. })
        ));
    }

    /// Deterministic xorshift generator for the fuzz-style tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % (n.max(1) as u64)) as usize
        }
    }

    #[test]
    fn reset_acknowledgement_is_exact() {
        assert_eq!(check_reset("Reset VM:\n"), Ok(()));
        assert_eq!(check_reset("Reset VM:\r\n\n"), Ok(()));
        for bad in [
            "",
            "\n",
            "Reset VM:\nReset failed\n",
            "Rxset VM:\n",
            "Powering off VM:\n",
        ] {
            assert!(check_reset(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parsers_never_panic() {
        let seeds = [
            fixture!("getallvms_default.txt"),
            fixture!("getallvms_reference_e1.txt"),
            fixture!("getstate_on.txt"),
            fixture!("fault_notfound_esxi5.txt"),
            fixture!("hostsummary_esxi8.txt"),
        ];
        let alphabet: Vec<char> = " \t\n\r[]()\"'{}=,.0123456789vmxVmidPoweredonfäöü-_/\u{0}"
            .chars()
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..6000 {
            let base = seeds[round % seeds.len()];
            let mut chars: Vec<char> = base.chars().collect();
            let edits = 1 + rng.below(8);
            for _ in 0..edits {
                match rng.below(4) {
                    0 if !chars.is_empty() => {
                        let i = rng.below(chars.len());
                        chars.remove(i);
                    }
                    1 => {
                        let i = rng.below(chars.len() + 1);
                        chars.insert(i, alphabet[rng.below(alphabet.len())]);
                    }
                    2 if !chars.is_empty() => {
                        let i = rng.below(chars.len());
                        chars[i] = alphabet[rng.below(alphabet.len())];
                    }
                    _ => {
                        let cut = rng.below(chars.len() + 1);
                        chars.truncate(cut);
                    }
                }
            }
            let s: String = if round % 7 == 0 {
                (0..rng.below(300))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect()
            } else {
                chars.into_iter().collect()
            };
            let _ = parse_getallvms(&s);
            let _ = parse_power_state(&s);
            let _ = parse_fault(&s);
            let _ = check_power_op(&s);
            let _ = parse_registervm(&s);
            let _ = parse_unregister(&s);
            let _ = parse_hostsummary(&s);
            let _ = parse_host_version(&s);
            if let Ok(vms) = parse_getallvms(&s) {
                let _ = find_vm(&vms, "cl0");
            }
            // A mutated getstate answer is either a known state or an error: never a guess.
            if let Ok(st) = parse_power_state(&s) {
                let want = match st {
                    VmPower::On => "Powered on",
                    VmPower::Off => "Powered off",
                    VmPower::Suspended => "Suspended",
                };
                assert!(s.contains(want));
            }
        }
    }
}
