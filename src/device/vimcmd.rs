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

/// `3, 5`: vmids in a message.
fn id_list(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
        // Both come from the device: quoted through `excerpt` (capped, control characters
        // blanked), never raw.
        if self.msg.is_empty() {
            write!(f, "{}", excerpt(&self.name))
        } else {
            write!(f, "{}: {}", excerpt(&self.name), excerpt(&self.msg))
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
    #[error("VM '{0}' not found on the host")]
    NotFound(String),
    /// Several VMs match.
    #[error("VM name '{plug}' is ambiguous (vmids {}); use the vmid as plug", id_list(.vmids))]
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

/// Longest row head (vmid through the `vmx-N` version column) a real getallvms row can have,
/// in bytes.
///
/// A head is the vmid, the name, the `[datastore] path` of the .vmx file, the guest id and the
/// version, each padded to its column's widest cell, three blanks between columns. VM names are
/// at most 80 characters (hostd escapes `%`, `/` and `\` as `%25`, `%2f`, `%5c`; UTF-8 takes up
/// to 4 bytes a character), datastore names and .vmx paths stay far below 1 KiB on any host
/// anyone administers, and guest ids and versions are short words: 4 KiB leaves ample room. A
/// longer line can still carry a row, because the first line of the VM's annotation follows
/// the version on the same line and annotations have no practical length limit; but its head
/// must end within this bound. A line whose head does not is an annotation continuation line
/// (or, right after the title, an error), never a VM. The bound also keeps parsing linear: a
/// line is searched for a head in its first `MAX_ROW_HEAD` bytes only.
pub const MAX_ROW_HEAD: usize = 4096;

/// Parses `vim-cmd vmsvc/getallvms`.
///
/// Rows are recognised by their structure (vmid, name, `[datastore] path` preceded by the
/// 3-blank column separator, one-word guest id, `vmx-NN`, annotation), not by naive word
/// splitting, so names with blanks or brackets and annotation continuation lines (even ones
/// starting with a number) are handled. `Skipping invalid VM` lines are ignored. Missing title
/// line, a fault block instead of the table, or a non-row line right after the title is an
/// error. Linear in the size of the output (see [`MAX_ROW_HEAD`]).
///
/// Annotations are printed raw, so a line of a VM's notes can be shaped exactly like a row:
/// the rows returned here are what the output *claims*. A name→vmid answer taken from them
/// must be confirmed by a source notes cannot forge before anything acts on it (the agent
/// reads the VM's own name with [`get_config`] / [`parse_config_name`]); see [`candidates`].
pub fn parse_getallvms(out: &str) -> Result<Vec<Vm>, ParseError> {
    let mut it = lines(out);
    // Only blank lines and `Skipping invalid VM` notes (stderr merged) may precede the title:
    // anything else (a fault block, a row, junk) means the output is not the table, and
    // skipping it would silently drop VMs from the inventory. A fault block counts only here,
    // before the title: after it, a `(vim.fault.X) {` line is annotation text (a note must not
    // be able to turn the whole inventory into an error).
    loop {
        match it.next() {
            None => return Err(fault_or_unrecognised(out)),
            Some(l) if is_header(l) => break,
            Some(l) if l.trim().is_empty() || l.starts_with("Skipping invalid VM '") => {}
            Some(l) => {
                return Err(match parse_fault(out) {
                    Some(f) => ParseError::Fault(f),
                    None => ParseError::Unrecognised(excerpt(l)),
                })
            }
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

/// A fault block if the output holds one, else "unrecognised" with an excerpt.
fn fault_or_unrecognised(out: &str) -> ParseError {
    match parse_fault(out) {
        Some(f) => ParseError::Fault(f),
        None => ParseError::Unrecognised(excerpt(out)),
    }
}

/// First index `>= from` where `needle` starts in `hay`.
fn find_from(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A possible version column of a row: `vmx-N` at `v` (ending at `vend`), the one-word guest
/// id at `guest`, and the end of the file column before it.
struct VersionCol {
    v: usize,
    vend: usize,
    guest: (usize, usize),
    file_end: usize,
}

/// Parses one getallvms data row, or returns `None` if the line is not one.
///
/// The row is split at the smallest file-column start `f` (a `   [` after the name) that has a
/// valid version column after it, and at the smallest such version column: so text after the
/// real version (the VM's own annotation) never changes the name or the vmid. Linear: every
/// candidate version column is checked once, file-column starts are walked with a pointer into
/// them (the file column's end grows with the version column's position).
fn parse_row(line: &str) -> Option<Vm> {
    let b = line.as_bytes();
    let digits_end = b.iter().take(11).position(|c| !c.is_ascii_digit())?;
    if digits_end == 0 {
        return None;
    }
    let vmid: u32 = line.get(..digits_end)?.parse().ok()?;
    if b.get(digits_end) != Some(&b' ') {
        return None;
    }
    let name_start = digits_end + run_before_fwd(b, digits_end);
    let head = b.get(..b.len().min(MAX_ROW_HEAD))?;

    // Every version column candidate: `   vmx-<digits>` ending at a blank or the end of the
    // line, the word before it preceded by at least three blanks.
    let mut cols: Vec<VersionCol> = Vec::new();
    let mut from = 0;
    while let Some(i) = find_from(head, from, b"   vmx-") {
        from = i + 1;
        let v = i + 3;
        let digits = head
            .get(v + 4..)
            .map_or(0, |t| t.iter().take_while(|c| c.is_ascii_digit()).count());
        let vend = v + 4 + digits;
        if digits == 0 || vend > head.len() || !matches!(b.get(vend), None | Some(b' ')) {
            continue;
        }
        // The guest id: the word before the version, after the last run of whitespace that
        // holds three blanks; the file column ends where that run starts.
        let Some(e) = line.get(..v).map(|p| p.trim_end().len()) else {
            continue;
        };
        let Some(g) = line
            .get(..e)
            .map(|p| p.trim_end_matches(|c: char| !c.is_whitespace()).len())
        else {
            continue;
        };
        let Some(file_end) = line.get(..g).map(|p| p.trim_end().len()) else {
            continue;
        };
        if g == e || !line.get(file_end..g).is_some_and(|w| w.contains("   ")) {
            continue;
        }
        cols.push(VersionCol {
            v,
            vend,
            guest: (g, e),
            file_end,
        });
    }
    if cols.is_empty() {
        return None;
    }

    let mut col = 0usize; // pointer into `cols`
    let mut close: Option<usize> = None; // the last `] ` found (positions only grow)
    let mut ff = name_start;
    while let Some(i) = find_from(head, ff, b"   [") {
        ff = i + 1;
        let f = i + 3;
        if i <= name_start {
            continue;
        }
        // The first `] ` after the `[`: the datastore ends there.
        let p = match close {
            Some(p) if p > f => p,
            _ => {
                let p = find_from(head, f + 1, b"] ")?;
                close = Some(p);
                p
            }
        };
        // The smallest version column whose file column reaches past `] ` plus one byte.
        while cols.get(col).is_some_and(|c| c.file_end <= p + 2) {
            col += 1;
        }
        let c = cols.get(col)?;
        if b.get(p + 2) == Some(&b' ') {
            continue;
        }
        if let Some(vm) = split_row(line, vmid, name_start, f, c) {
            return Some(vm);
        }
    }
    None
}

/// Number of blanks at and after `start`.
fn run_before_fwd(b: &[u8], start: usize) -> usize {
    b.get(start..)
        .map_or(0, |t| t.iter().take_while(|&&c| c == b' ').count())
}

fn split_row(line: &str, vmid: u32, name_start: usize, f: usize, c: &VersionCol) -> Option<Vm> {
    let name = line.get(name_start..f)?.trim_end();
    if name.is_empty() {
        return None;
    }
    let file = line.get(f..c.file_end)?;
    let guest = line.get(c.guest.0..c.guest.1)?;
    if guest.is_empty() || guest.contains(char::is_whitespace) {
        return None;
    }
    let (_, path) = file.strip_prefix('[')?.split_once("] ")?;
    if path.is_empty() || path.starts_with(' ') {
        return None;
    }
    let version = line.get(c.v..c.vend)?;
    let annotation = line.get(c.vend..)?.trim();
    Some(Vm {
        vmid,
        name: name.to_owned(),
        file: file.to_owned(),
        guest_os: guest.to_owned(),
        version: version.to_owned(),
        annotation: annotation.to_owned(),
    })
}

/// A VM a plug may name, as the getallvms rows claim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The vmid the row(s) give.
    pub vmid: u32,
    /// Found by name (a row's name is the plug); false: the plug is this numeric vmid.
    pub by_name: bool,
}

/// Every distinct vmid a plug may name: the vmids of rows whose name is the plug, then the
/// numeric plug itself if a row has that vmid (and no row of that vmid matched by name).
/// Rows that repeat a vmid count once. A by-name candidate is only what the output claims (a
/// line of a VM's notes can be shaped like a row): confirm it with [`parse_config_name`]
/// before acting on it. A by-vmid candidate needs no confirmation to be the VM the plug names
/// (every vim-cmd call takes the vmid itself, and answers NotFound for one that does not
/// exist).
pub fn candidates(vms: &[Vm], plug: &str) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for v in vms.iter().filter(|v| v.name == plug) {
        if !out.iter().any(|c| c.vmid == v.vmid) {
            out.push(Candidate {
                vmid: v.vmid,
                by_name: true,
            });
        }
    }
    let id = plug
        .parse::<u32>()
        .ok()
        .filter(|_| plug.bytes().all(|b| b.is_ascii_digit()));
    if let Some(id) = id {
        if vms.iter().any(|v| v.vmid == id) && !out.iter().any(|c| c.vmid == id) {
            out.push(Candidate {
                vmid: id,
                by_name: false,
            });
        }
    }
    out
}

/// The vmids of `Skipping invalid VM 'N'` lines (getallvms prints them on stderr): VMs that are
/// registered but not listed as rows.
pub fn skipped_vmids(text: &str) -> Vec<u32> {
    lines(text)
        .filter_map(|l| {
            l.strip_prefix("Skipping invalid VM '")?
                .split_once('\'')?
                .0
                .parse()
                .ok()
        })
        .collect()
}

/// Whether a lone candidate must be confirmed with the VM's own name before anything acts on
/// it. getallvms lists every valid registered VM exactly once and a note can only add lines,
/// so a vmid carried only by rows named `plug`, and not an invalid (skipped) VM's, is either
/// that VM or no VM at all (every call on it then answers NotFound): no confirmation needed.
/// A by-name candidate whose vmid another row names otherwise, or an invalid VM's, may be a
/// note's forgery: it needs one. A by-vmid candidate never does.
pub fn needs_confirmation(vms: &[Vm], skipped: &[u32], c: Candidate, plug: &str) -> bool {
    c.by_name
        && (skipped.contains(&c.vmid) || vms.iter().any(|v| v.vmid == c.vmid && v.name != plug))
}

/// Resolves a plug from the rows alone: the exact VM name, or else a numeric vmid. A name that
/// rows of several vmids share, or a numeric plug that is both one VM's name and another VM's
/// vmid, is ambiguous; rows repeating the same vmid are one VM. The answer is what the output
/// claims (see [`candidates`]): fence_esxi confirms it before acting.
pub fn find_vm<'a>(vms: &'a [Vm], plug: &str) -> Result<&'a Vm, LookupError> {
    match candidates(vms, plug).as_slice() {
        [one] => vms
            .iter()
            .find(|v| v.vmid == one.vmid && (!one.by_name || v.name == plug))
            .ok_or_else(|| LookupError::NotFound(plug.to_owned())),
        [] => Err(LookupError::NotFound(plug.to_owned())),
        many => Err(LookupError::Ambiguous {
            plug: plug.to_owned(),
            vmids: many.iter().map(|c| c.vmid).collect(),
        }),
    }
}

/// `vim-cmd vmsvc/get.config N`: the VM's configuration, whose first fields (before any text
/// a user or a guest controls) include its name.
pub fn get_config(vmid: u32) -> String {
    format!("vim-cmd vmsvc/get.config {vmid}")
}

/// Fields hostd prints before `name` in a `vim.vm.ConfigInfo` block: its own values only
/// (data-object bookkeeping and timestamps), never user or guest text.
const CONFIG_FIELDS_BEFORE_NAME: [&str; 4] = [
    "dynamicType",
    "dynamicProperty",
    "changeVersion",
    "modified",
];

/// Parses the VM's name out of `vim-cmd vmsvc/get.config N`.
///
/// Accepted: an optional `Configuration:` title and blank lines, then `(vim.vm.ConfigInfo) {`,
/// then top-level fields (three-blank indent) of which only [`CONFIG_FIELDS_BEFORE_NAME`] may
/// come before `name = "…",` (ESXi 5 ends it with `, `). The name comes before the
/// annotation, the guest's reports and every other field a user or guest controls, so nothing
/// they write can be taken for it; anything else in that place is an error. A fault block
/// instead of the configuration (NotFound for a vmid that does not exist) is
/// [`ParseError::Fault`].
pub fn parse_config_name(out: &str) -> Result<String, ParseError> {
    let mut it = lines(out);
    loop {
        match it.next() {
            Some(l) if l.trim().is_empty() || l.trim_end() == "Configuration:" => {}
            Some(l) if l.trim_end() == "(vim.vm.ConfigInfo) {" => break,
            _ => return Err(fault_or_unrecognised(out)),
        }
    }
    for l in it {
        let Some(field) = l.strip_prefix("   ").filter(|f| !f.starts_with(' ')) else {
            break;
        };
        let Some((key, value)) = field.split_once(" = ") else {
            break;
        };
        if CONFIG_FIELDS_BEFORE_NAME.contains(&key) {
            continue;
        }
        if key != "name" {
            break;
        }
        let name = value
            .trim_end()
            .strip_suffix(',')
            .and_then(|v| v.strip_prefix('"'))
            .and_then(|v| v.strip_suffix('"'));
        return match name {
            Some(n) if !n.trim().is_empty() => Ok(n.trim_end().to_owned()),
            _ => Err(ParseError::Unrecognised(excerpt(l))),
        };
    }
    Err(ParseError::Unrecognised(excerpt(out)))
}

/// The line between the two answers of [`getstate_then_config`].
pub const CONFIG_MARK: &str = "@@fencekit-config";

/// One shell line reading a VM's power state and then its configuration (one round trip for
/// the state read that also confirms which VM a vmid is): `power.getstate N`, a
/// [`CONFIG_MARK`] line, `get.config N`. `sudo` goes before each vim-cmd (`sudo -n ` or
/// nothing). The state comes first because its output carries no user text: the first
/// [`CONFIG_MARK`] line is ours whatever the configuration (annotation) holds.
pub fn getstate_then_config(vmid: u32, sudo: &str) -> String {
    format!(
        "{sudo}{}; echo {CONFIG_MARK}; {sudo}{}",
        power_getstate(vmid),
        get_config(vmid)
    )
}

/// Splits the output of [`getstate_then_config`] into the getstate and the get.config answers
/// at the first [`CONFIG_MARK`] line; no such line is an error.
pub fn split_getstate_then_config(out: &str) -> Result<(&str, &str), ParseError> {
    let mark = format!("{CONFIG_MARK}\n");
    let at = if out.starts_with(&mark) {
        Some(0)
    } else {
        out.find(&format!("\n{mark}")).map(|i| i + 1)
    };
    match at {
        Some(i) => Ok((
            out.get(..i).unwrap_or_default(),
            out.get(i + mark.len()..).unwrap_or_default(),
        )),
        None => Err(ParseError::Unrecognised(excerpt(out))),
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
        // A row repeating cl0's vmid and name (a note copying it) is still one VM.
        dup.push(vms.first().unwrap().clone());
        assert_eq!(find_vm(&dup, "cl0").unwrap().vmid, 1);
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

    /// The row rule of getallvms output in a note: what an admin with note rights can forge.
    fn phantom_inventory(note: &str) -> String {
        format!(
            "Vmid   Name   File   Guest OS   Version   Annotation\n\
1      cl0    [datastore1] cl0/cl0.vmx   centos7_64Guest   vmx-13   {note}\n\
2      cl1    [datastore1] cl1/cl1.vmx   centos7_64Guest   vmx-13             \n"
        )
    }

    #[test]
    fn a_note_shaped_like_a_row_is_only_a_claim() {
        // The note of cl0 holds a line shaped exactly like a row for node1 with cl1's vmid.
        let out = phantom_inventory(
            "moved to esxi2\n2      node1   [datastore1] node1/node1.vmx   rhel8_64Guest     vmx-19",
        );
        let vms = parse_getallvms(&out).unwrap();
        // The parser cannot tell it from a row: it is returned as what the output claims...
        assert_eq!(names(&vms), vec![(1, "cl0"), (2, "node1"), (2, "cl1")]);
        // ...and the candidates say it was found by name, so the agent must confirm it.
        assert_eq!(
            candidates(&vms, "node1"),
            vec![Candidate {
                vmid: 2,
                by_name: true
            }]
        );
        // A duplicate of a real row (same vmid, same name) is one VM, not an ambiguity.
        let out = phantom_inventory(
            "x\n2      cl1    [datastore1] cl1/cl1.vmx   centos7_64Guest   vmx-13",
        );
        let vms = parse_getallvms(&out).unwrap();
        assert_eq!(find_vm(&vms, "cl1").unwrap().vmid, 2);
        assert_eq!(candidates(&vms, "cl1").len(), 1);
        // A numeric plug: the vmid and a phantom row named like it are two candidates.
        let out = phantom_inventory("x\n77     2      [ds] 2/2.vmx   otherGuest64   vmx-19");
        let vms = parse_getallvms(&out).unwrap();
        assert_eq!(
            candidates(&vms, "2"),
            vec![
                Candidate {
                    vmid: 77,
                    by_name: true
                },
                Candidate {
                    vmid: 2,
                    by_name: false
                }
            ]
        );
    }

    #[test]
    fn only_a_doubtful_candidate_needs_confirmation() {
        let c = |vmid| Candidate {
            vmid,
            by_name: true,
        };
        // A phantom row with cl1's vmid: two names for vmid 2.
        let out = phantom_inventory(&format!("x\n{}", "2      node1   [ds] n/n.vmx   g   vmx-1"));
        let vms = parse_getallvms(&out).unwrap();
        assert!(needs_confirmation(&vms, &[], c(2), "node1"));
        assert!(needs_confirmation(&vms, &[], c(2), "cl1"));
        assert!(!needs_confirmation(&vms, &[], c(1), "cl0"));
        // A vmid no other row carries: that VM or no VM.
        let out = phantom_inventory(&format!("x\n{}", "77     node1   [ds] n/n.vmx   g   vmx-1"));
        let vms = parse_getallvms(&out).unwrap();
        assert!(!needs_confirmation(&vms, &[], c(77), "node1"));
        // ...unless it is an invalid VM's (registered, not listed).
        assert_eq!(
            skipped_vmids("Skipping invalid VM '77'\nSkipping invalid VM 'x'\nfoo\n"),
            vec![77]
        );
        assert!(needs_confirmation(&vms, &[77], c(77), "node1"));
        // By vmid: never.
        let by_id = Candidate {
            vmid: 2,
            by_name: false,
        };
        assert!(!needs_confirmation(&vms, &[2], by_id, "2"));
    }

    #[test]
    fn a_fault_block_in_a_note_is_not_a_fault() {
        let out = phantom_inventory(
            "see below\n(vim.fault.NotFound) {\n   msg = \"Unable to find a VM\"\n}",
        );
        let vms = parse_getallvms(&out).unwrap();
        assert_eq!(names(&vms), vec![(1, "cl0"), (2, "cl1")]);
        assert!(vms
            .first()
            .unwrap()
            .annotation
            .contains("vim.fault.NotFound"));
        // A real fault (instead of the table) still is one.
        assert!(matches!(
            parse_getallvms(fixture!("fault_notfound_esxi5.txt")),
            Err(ParseError::Fault(_))
        ));
    }

    /// The row parser before it was made linear (kept to check the new one gives the same
    /// answers on short lines).
    fn quadratic_parse_row(line: &str) -> Option<Vm> {
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
                let name = line.get(name_start..f)?.trim_end();
                if name.is_empty() {
                    continue;
                }
                let Some(mid) = line.get(f..v).map(str::trim_end) else {
                    continue;
                };
                let Some(sep) = mid.rfind("   ") else {
                    continue;
                };
                let file = mid.get(..sep).unwrap().trim_end();
                let guest = mid.get(sep..).unwrap().trim();
                if guest.is_empty() || guest.contains(char::is_whitespace) {
                    continue;
                }
                let Some((_, path)) = file.strip_prefix('[').and_then(|f| f.split_once("] "))
                else {
                    continue;
                };
                if path.is_empty() || path.starts_with(' ') {
                    continue;
                }
                let tail = line.get(v..)?;
                let vend = tail.find(' ').unwrap_or(tail.len());
                let version = tail.get(..vend)?;
                let num = version.strip_prefix("vmx-")?;
                if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                return Some(Vm {
                    vmid,
                    name: name.to_owned(),
                    file: file.to_owned(),
                    guest_os: guest.to_owned(),
                    version: version.to_owned(),
                    annotation: tail.get(vend..)?.trim().to_owned(),
                });
            }
        }
        None
    }

    #[test]
    fn linear_row_parser_agrees_with_the_old_one() {
        let pieces = [
            "1",
            "42",
            " ",
            "   ",
            "    ",
            "[",
            "]",
            "] ",
            "[ds]",
            "[datastore1] ",
            "a",
            "web",
            "[old]",
            "vmx-",
            "vmx-19",
            "   vmx-13",
            "   [ds] x/x.vmx",
            "g",
            "rhel8_64Guest",
            "\t",
            "ä",
            "/",
            ".vmx",
            "  ",
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut rows = 0;
        for _ in 0..40_000 {
            let mut line = String::new();
            if rng.below(3) > 0 {
                line.push_str(["1", "23", "4294967295", "4294967296"][rng.below(4)]);
                line.push_str(["   ", " ", "      "][rng.below(3)]);
            }
            if rng.below(2) == 0 {
                for _ in 0..rng.below(14) {
                    line.push_str(pieces[rng.below(pieces.len())]);
                }
            } else {
                // Row-shaped: name, file, guest, version, annotation, each with some noise.
                let seg = |rng: &mut Rng, base: &str, line: &mut String| {
                    line.push_str(base);
                    for _ in 0..rng.below(3) {
                        line.push_str(pieces[rng.below(pieces.len())]);
                    }
                };
                seg(&mut rng, "n", &mut line);
                seg(&mut rng, "   [ds] ", &mut line);
                seg(&mut rng, "d/x.vmx", &mut line);
                let sep = ["   ", "      ", " "][rng.below(3)];
                seg(&mut rng, sep, &mut line);
                seg(&mut rng, "guest", &mut line);
                let ver = ["   vmx-", "   vmx-1", "      vmx-19"][rng.below(3)];
                seg(&mut rng, ver, &mut line);
                seg(&mut rng, "", &mut line);
            }
            let old = quadratic_parse_row(&line);
            rows += usize::from(old.is_some());
            assert_eq!(parse_row(&line), old, "{line:?}");
        }
        for l in fixture!("getallvms_default.txt").lines().skip(1) {
            assert_eq!(parse_row(l), quadratic_parse_row(l), "{l:?}");
        }
        assert!(rows > 100, "too few rows generated: {rows}");
    }

    #[test]
    fn megabyte_lines_parse_in_linear_time() {
        // Lines of 1 MiB shaped to make a quadratic search blow up: digits first, then
        // thousands of `   [` and `   vmx-` (the old parser took 10.8 s for 120 KB).
        const MB: usize = 1 << 20;
        let mut evil = String::from("2      node1");
        while evil.len() < MB {
            evil.push_str("   [d] p   vmx-");
        }
        let digits = "7".repeat(MB);
        let long_note = "n".repeat(MB);
        let out = format!(
            "Vmid   Name   File   Guest OS   Version   Annotation\n\
1      cl0    [datastore1] cl0/cl0.vmx   centos7_64Guest   vmx-13   {long_note}\n\
{evil}\n{digits}\n3      cl3    [datastore1] cl3/cl3.vmx   centos7_64Guest   vmx-13   \n"
        );
        let t0 = std::time::Instant::now();
        let vms = parse_getallvms(&out).unwrap();
        let took = t0.elapsed();
        println!("getallvms with three 1 MiB lines parsed in {took:?}");
        // The real row with a 1 MiB one-line annotation is a VM; the others are annotation.
        assert_eq!(names(&vms), vec![(1, "cl0"), (3, "cl3")]);
        let cl0 = vms.first().unwrap();
        assert!(cl0.annotation.starts_with("nnnn"));
        assert_eq!(cl0.annotation.lines().count(), 3);
        assert!(cl0.annotation.len() > 3 * MB);
        // A row whose head is longer than MAX_ROW_HEAD is not a VM (a long name or path).
        let long_name = "x".repeat(MAX_ROW_HEAD);
        let line = format!("5      {long_name}   [ds] a/a.vmx   g   vmx-1");
        assert_eq!(parse_row(&line), None);
        let line = format!("5      short   [ds] a/a.vmx   g   vmx-1   {long_name}");
        assert_eq!(parse_row(&line).unwrap().name, "short");
    }

    #[test]
    fn config_name_from_get_config() {
        for fx in [
            fixture!("getconfig_esxi8.txt"),
            fixture!("getconfig_esxi5.txt"),
        ] {
            assert_eq!(
                parse_config_name(fx).as_deref(),
                Ok("node 3 with spaces"),
                "{fx}"
            );
            // CRLF line ends.
            assert_eq!(
                parse_config_name(&fx.replace('\n', "\r\n")).as_deref(),
                Ok("node 3 with spaces")
            );
        }
        // A name with quotes (vim-cmd prints strings raw).
        let q = fixture!("getconfig_esxi8.txt")
            .replace("name = \"node 3 with spaces\",", "name = \"say \"hi\"\",");
        assert_eq!(parse_config_name(&q).as_deref(), Ok("say \"hi\""));
        // NotFound for a vmid that does not exist.
        assert!(matches!(
            parse_config_name(fixture!("fault_notfound_esxi8.txt")),
            Err(ParseError::Fault(_))
        ));
        // The name must come before anything a user controls: a field that is not one of
        // hostd's own before it, a missing name, or junk is an error.
        let moved = fixture!("getconfig_esxi8.txt").replace(
            "   changeVersion = ",
            "   annotation = \"x\",\n   name = \"forged\",\n   changeVersion = ",
        );
        assert!(parse_config_name(&moved).is_err());
        for bad in [
            "",
            "Configuration:\n",
            "(vim.vm.ConfigInfo) {\n}\n",
            "(vim.vm.ConfigInfo) {\n   name = <unset>,\n}\n",
            "(vim.vm.ConfigInfo) {\n   name = \"\",\n}\n",
            "(vim.vm.ConfigInfo) {\n      name = \"nested\",\n}\n",
            "garbage\n(vim.vm.ConfigInfo) {\n   name = \"x\",\n}\n",
        ] {
            assert!(parse_config_name(bad).is_err(), "{bad:?}");
        }
        // An annotation holding a name line changes nothing: the first name is the VM's.
        let noted = fixture!("getconfig_esxi8.txt")
            .replace("owner: ha-team", "owner: ha-team\n   name = \"node1\",");
        assert_eq!(
            parse_config_name(&noted).as_deref(),
            Ok("node 3 with spaces")
        );
    }

    #[test]
    fn getstate_then_config_splits_at_the_first_mark() {
        assert_eq!(
            getstate_then_config(4, "sudo -n "),
            "sudo -n vim-cmd vmsvc/power.getstate 4; echo @@fencekit-config; \
sudo -n vim-cmd vmsvc/get.config 4"
        );
        let cfg = fixture!("getconfig_esxi8.txt").replace(
            "owner: ha-team",
            "@@fencekit-config\nRetrieved runtime info\nPowered off",
        );
        let out = format!("Retrieved runtime info\nPowered on\n@@fencekit-config\n{cfg}");
        let (st, conf) = split_getstate_then_config(&out).unwrap();
        assert_eq!(parse_power_state(st), Ok(VmPower::On));
        assert_eq!(parse_config_name(conf).as_deref(), Ok("node 3 with spaces"));
        let (st, conf) = split_getstate_then_config("@@fencekit-config\nx").unwrap();
        assert_eq!((st, conf), ("", "x"));
        assert!(split_getstate_then_config("Retrieved runtime info\nPowered on\n").is_err());
    }

    #[test]
    fn fault_text_is_quoted_through_excerpt() {
        let f = Fault {
            name: "vim.fault.X".into(),
            msg: format!("\u{1b}[2Jline\nSuccess: Powered OFF{}", "z".repeat(5000)),
        };
        let t = f.to_string();
        assert!(!t.contains('\u{1b}') && !t.contains('\n'), "{t:?}");
        assert!(t.len() < 400, "{}", t.len());
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
            let _ = parse_config_name(&s);
            let _ = split_getstate_then_config(&s);
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
