//! What the engine does to hosts and BMCs, behind two traits so that the engine logic can be
//! tested with an in-memory fake: [`HostOps`] (an ESXi host over SSH + `vim-cmd`) and
//! [`BmcOps`] (a host's BMC over IPMI).
//!
//! The ESXi implementation ([`EsxiHosts`]) runs one `vim-cmd` per SSH exec, every one bounded:
//! read-only commands by the host's `shell_timeout_s`, commands that change something by
//! `max(shell_timeout_s, OP_TIMEOUT_FLOOR)` (a power-on on a real host takes longer than a
//! listing). A command that did not answer in time is never taken as done: the state is read
//! back. Values that reach the remote shell (vmx paths, message ids) are quoted with
//! [`shell_quote`]; vmids are numbers.
//!
//! The BMC implementation ([`IpmiBmcs`]) opens one IPMI session per operation with the
//! project's session code (as fence_bmc does) and closes it afterwards.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::device::vimcmd::{self, ParseError};
use crate::protocol::agent::PowerState;
use crate::protocol::error::excerpt;
use crate::protocol::secret::Secret;
use crate::transport::ipmi::{ChassisOp, IpmiConfig, Session};
use crate::transport::ssh::{
    log_command, shell_quote, ExecOutput, HostKeyPolicy, SshAuth, SshConfig, SshError, SshSession,
};

use super::inventory::{Inventory, ResolvedBmc, ResolvedSsh};
use super::snapshot::{datastore_of, memory_mb_of, VmPower, VmRecord};

/// Lower bound of the timeout of a command that changes something (power, register, …).
pub const OP_TIMEOUT_FLOOR: Duration = Duration::from_secs(30);

/// Why a host or BMC operation failed. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The host (or BMC) could not be reached or logged in to.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The command did not answer in time (its effect is unknown: read the state back).
    #[error("timed out: {0}")]
    Timeout(String),
    /// "Failed to lock the file": someone still holds the VM's disks. Never forced.
    #[error("the VM's files are locked (another host still holds its disks): {0}")]
    Locked(String),
    /// The VM (vmid) is not registered there.
    #[error("not found: {0}")]
    NotFound(String),
    /// The command answered with a failure.
    #[error("{0}")]
    Failed(String),
    /// Bad local configuration (credentials, …).
    #[error("configuration: {0}")]
    Config(String),
}

impl OpError {
    /// True for errors worth trying again (the host did not answer, or not in time).
    pub fn transient(&self) -> bool {
        matches!(self, OpError::Unreachable(_) | OpError::Timeout(_))
    }
}

/// A VM registered on a host, as `getallvms` lists it (no power state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// vmid on that host.
    pub vmid: u32,
    /// Display name.
    pub name: String,
    /// Configuration file, `[datastore] dir/name.vmx`.
    pub vmx: String,
}

/// A BMC's answer about the chassis power.
pub type ChassisPower = PowerState;

/// Operations on the hypervisor hosts, by inventory host name.
pub trait HostOps: Send + Sync {
    /// The VMs registered on `host` (vmid, name, vmx), without power state: one listing.
    fn list_registered(&self, host: &str) -> Result<Vec<Registered>, OpError>;
    /// The power state of `vmid` on `host`.
    fn power_state(&self, host: &str, vmid: u32) -> Result<VmPower, OpError>;
    /// The configured memory of a registered VM, MB, when the host says (`get.summary`, else
    /// the vmx's `memSize`).
    fn vm_memory_mb(&self, host: &str, vm: &Registered) -> Result<Option<u64>, OpError>;
    /// The host's memory, MB, when the host says.
    fn host_memory_mb(&self, host: &str) -> Result<Option<u64>, OpError>;
    /// The datastores the host has mounted.
    fn datastores(&self, host: &str) -> Result<Vec<String>, OpError>;
    /// Registers `vmx` on `host`; the new vmid.
    fn register(&self, host: &str, vmx: &str) -> Result<u32, OpError>;
    /// Powers `vmid` on (or resumes it), answering the "moved or copied" question with
    /// "moved" if it is asked, and reads the state back as on.
    fn power_on(&self, host: &str, vmid: u32) -> Result<(), OpError>;
    /// Hard power-off, read back as off.
    fn power_off(&self, host: &str, vmid: u32) -> Result<(), OpError>;
    /// Guest shutdown, waiting at most `bound` for the VM to be off.
    fn shutdown_guest(&self, host: &str, vmid: u32, bound: Duration) -> Result<(), OpError>;
    /// Suspends `vmid`, read back as suspended.
    fn suspend(&self, host: &str, vmid: u32) -> Result<(), OpError>;
    /// Unregisters `vmid` (it must not be running).
    fn unregister(&self, host: &str, vmid: u32) -> Result<(), OpError>;
    /// Removes `vmid` from the host's autostart configuration.
    fn autostart_off(&self, host: &str, vmid: u32) -> Result<(), OpError>;

    /// Every VM on `host` with its power state and memory (when `memory_of` gives none, the
    /// host is asked): what a snapshot holds. The per-VM calls run [`PROBE_PARALLEL`] at a
    /// time (a probe of a host with many VMs would otherwise outlast `detect_interval_s`).
    fn list_vms(
        &self,
        host: &str,
        memory_of: &dyn Fn(&Registered) -> Option<u64>,
    ) -> Result<Vec<VmRecord>, OpError> {
        let regs = self.list_registered(host)?;
        let known: Vec<Option<u64>> = regs.iter().map(memory_of).collect();
        let jobs: Vec<(usize, &Registered, Option<u64>)> = regs
            .iter()
            .zip(known)
            .enumerate()
            .map(|(i, (r, m))| (i, r, m))
            .collect();
        type Got = (usize, Result<(VmPower, Option<u64>), OpError>);
        let mut got: Vec<Got> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..PROBE_PARALLEL.min(jobs.len()))
                .map(|w| {
                    let jobs = &jobs;
                    s.spawn(move || {
                        jobs.iter()
                            .skip(w)
                            .step_by(PROBE_PARALLEL)
                            .map(|(i, r, m)| {
                                let one = self.power_state(host, r.vmid).map(|p| {
                                    let mem =
                                        m.or_else(|| self.vm_memory_mb(host, r).unwrap_or(None));
                                    (p, mem)
                                });
                                (*i, one)
                            })
                            .collect::<Vec<Got>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        got.sort_by_key(|(i, _)| *i);
        if got.len() != regs.len() {
            return Err(OpError::Failed(format!(
                "{host}: the power states of {} VMs were not all read",
                regs.len()
            )));
        }
        let mut out = Vec::new();
        for (r, (_, res)) in regs.into_iter().zip(got) {
            let (power, memory_mb) = res?;
            out.push(VmRecord {
                datastore: datastore_of(&r.vmx).unwrap_or_default().to_string(),
                name: r.name,
                vmid: r.vmid,
                vmx: r.vmx,
                power,
                memory_mb,
            });
        }
        Ok(out)
    }
}

/// How many per-VM calls a probe ([`HostOps::list_vms`]) makes at once on one host.
pub const PROBE_PARALLEL: usize = 4;

/// Operations on the hosts' BMCs, by inventory host name.
pub trait BmcOps: Send + Sync {
    /// Chassis power status. Anything unreadable is an error, never off.
    fn status(&self, host: &str) -> Result<ChassisPower, OpError>;
    /// Hard power-off request (Chassis Control power down). Success means the BMC accepted
    /// it, not that the power is off: read back with [`BmcOps::status`].
    fn power_off(&self, host: &str) -> Result<(), OpError>;
}

/// A vmx path in the `[datastore] dir/name.vmx` form (a `/vmfs/volumes/ds/…` path is
/// converted), for comparing registrations across hosts.
pub fn normalize_vmx(vmx: &str) -> String {
    let t = vmx.trim();
    if let Some(rest) = t.strip_prefix("/vmfs/volumes/") {
        if let Some((ds, path)) = rest.split_once('/') {
            return format!("[{ds}] {path}");
        }
    }
    if let Some(rest) = t.strip_prefix('[') {
        if let Some((ds, path)) = rest.split_once(']') {
            return format!("[{}] {}", ds.trim(), path.trim_start());
        }
    }
    t.to_string()
}

/// Runs `script` through `/bin/sh -c` within `limit`, with `input` on its stdin; its stdout
/// (at most 64 KiB). Used for `password_script` and `notify_command`.
pub fn run_bounded(script: &str, input: Option<&[u8]>, limit: Duration) -> Result<Vec<u8>, String> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run the command: {e}"))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let mut stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.take(64 * 1024).read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", limit.as_secs()));
            }
        }
    };
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    let buf = rx
        .recv_timeout(wait)
        .map_err(|_| format!("timed out after {} s", limit.as_secs()))?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    Ok(buf)
}

/// Runs a `password_script` (bounded) and returns its output as the password.
fn password_from_script(script: &str, limit: Duration) -> Result<Secret, String> {
    let out = run_bounded(script, None, limit.max(Duration::from_secs(10)))
        .map_err(|e| format!("password_script: {e}"))?;
    Ok(Secret::new(String::from_utf8_lossy(&out).trim_end()))
}

/// An inventory host's SSH settings as a session configuration, with these connect (`login`)
/// and command (`shell`) timeouts; the one place the engine and fence_esxi across hosts build
/// it. `Err` says what the inventory lacks (no credential) or why password_script failed.
pub fn ssh_config(r: &ResolvedSsh, login: Duration, shell: Duration) -> Result<SshConfig, String> {
    let auth = if let Some(path) = &r.identity_file {
        SshAuth::Key {
            path: path.clone(),
            passphrase: r.password.clone(),
        }
    } else if let Some(pw) = &r.password {
        SshAuth::Password(pw.clone())
    } else if let Some(script) = &r.password_script {
        SshAuth::Password(password_from_script(script, login)?)
    } else {
        return Err(format!(
            "{}: no password, password_script or identity_file in the inventory",
            r.address
        ));
    };
    let mut cfg = SshConfig::new(r.address.clone(), r.username.clone(), auth);
    cfg.port = r.port;
    cfg.host_key = HostKeyPolicy {
        known_hosts: r.known_hosts.clone(),
        fingerprint: r.host_key_fingerprint.clone(),
        accept_new: false,
    };
    cfg.connect_timeout = login;
    cfg.command_timeout = shell;
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------------
// ESXi over SSH + vim-cmd.

/// Most idle sessions kept per host.
const MAX_IDLE: usize = 8;

/// One host's sessions: opened on demand (so that VMs on the same host can be worked on in
/// parallel), kept for reuse after a success, dropped after a transport error.
struct HostConn {
    resolved: ResolvedSsh,
    cfg: Mutex<Option<SshConfig>>,
    idle: Mutex<Vec<SshSession>>,
}

impl HostConn {
    fn config(&self) -> Result<SshConfig, OpError> {
        let mut g = self
            .cfg
            .lock()
            .map_err(|_| OpError::Failed("session lock poisoned".into()))?;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let r = &self.resolved;
        let cfg = ssh_config(
            r,
            Duration::from_secs(r.login_timeout_s.max(1)),
            Duration::from_secs(r.shell_timeout_s.max(1)),
        )
        .map_err(OpError::Config)?;
        *g = Some(cfg.clone());
        Ok(cfg)
    }

    /// Runs `cmd` on an idle session or a new one (several at once per host, so not through
    /// one `RemoteShell`; the same debug line). A read-only command that fails on a reused
    /// session (the server may have closed it) is run once more on a new session.
    fn exec(&self, cmd: &str, timeout: Duration, mutating: bool) -> Result<ExecOutput, OpError> {
        let cfg = self.config()?;
        log_command(Some(&self.resolved.address), cmd);
        let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
        let was_reused = reused.is_some();
        let mut session = match reused {
            Some(s) => s,
            None => SshSession::connect(&cfg).map_err(ssh_error)?,
        };
        let mut r = session.exec(cmd, timeout);
        if r.is_err() && was_reused && !mutating {
            session = SshSession::connect(&cfg).map_err(ssh_error)?;
            r = session.exec(cmd, timeout);
        }
        if r.is_ok() {
            if let Ok(mut v) = self.idle.lock() {
                if v.len() < MAX_IDLE {
                    v.push(session);
                }
            }
        }
        r.map_err(ssh_error)
    }
}

fn ssh_error(e: SshError) -> OpError {
    match e {
        SshError::Timeout(t) => OpError::Timeout(t),
        SshError::Config(t) => OpError::Config(t),
        other => OpError::Unreachable(other.to_string()),
    }
}

/// [`HostOps`] for ESXi hosts over SSH and `vim-cmd`, from the inventory's resolved settings.
pub struct EsxiHosts {
    conns: BTreeMap<String, Arc<HostConn>>,
    /// How long a power-on is read back before it counts as failed.
    pub power_wait: Duration,
}

impl EsxiHosts {
    /// One lazily opened session per inventory host.
    pub fn new(inv: &Inventory) -> Self {
        let conns = inv
            .hosts
            .iter()
            .map(|h| {
                let c = HostConn {
                    resolved: inv.ssh_for(h),
                    cfg: Mutex::new(None),
                    idle: Mutex::new(Vec::new()),
                };
                (h.name.clone(), Arc::new(c))
            })
            .collect();
        EsxiHosts {
            conns,
            power_wait: Duration::from_secs(60),
        }
    }

    fn conn(&self, host: &str) -> Result<Arc<HostConn>, OpError> {
        self.conns
            .get(host)
            .cloned()
            .ok_or_else(|| OpError::Config(format!("unknown host {host}")))
    }

    fn timeouts(&self, host: &str) -> Result<(Duration, Duration), OpError> {
        let c = self.conn(host)?;
        let short = Duration::from_secs(c.resolved.shell_timeout_s.max(1));
        Ok((short, short.max(OP_TIMEOUT_FLOOR)))
    }

    /// Runs `cmd` on `host`; stdout and stderr joined, and the exit status.
    fn run(&self, host: &str, cmd: &str, mutating: bool) -> Result<(String, bool), OpError> {
        let (short, long) = self.timeouts(host)?;
        self.run_within(host, cmd, if mutating { long } else { short }, mutating)
    }

    /// [`EsxiHosts::run`] with an explicit timeout.
    fn run_within(
        &self,
        host: &str,
        cmd: &str,
        timeout: Duration,
        mutating: bool,
    ) -> Result<(String, bool), OpError> {
        let c = self.conn(host)?;
        let out = c.exec(cmd, timeout, mutating)?;
        let mut text = out.stdout_text();
        let err = out.stderr_text();
        if !err.is_empty() {
            text.push_str(&err);
        }
        if is_lock_error(&text) {
            return Err(OpError::Locked(excerpt(&text)));
        }
        Ok((text, out.success()))
    }

    fn run_stdout(&self, host: &str, cmd: &str) -> Result<String, OpError> {
        let (short, _) = self.timeouts(host)?;
        let c = self.conn(host)?;
        let out = c.exec(cmd, short, false)?;
        Ok(out.stdout_text())
    }

    /// Reads the power state back until it is `want` or `bound` has passed.
    fn wait_power(
        &self,
        host: &str,
        vmid: u32,
        want: VmPower,
        bound: Duration,
    ) -> Result<(), OpError> {
        let deadline = Instant::now() + bound;
        loop {
            let seen = self.power_state(host, vmid);
            match seen {
                Ok(p) if p == want => return Ok(()),
                Ok(p) if Instant::now() >= deadline => {
                    return Err(OpError::Timeout(format!(
                        "vmid {vmid} still {p} after {} s (wanted {want})",
                        bound.as_secs()
                    )))
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Answers a pending "moved or copied" question with "moved"; `Ok(true)` when one was
    /// answered. Another question is an error (never answered blindly).
    fn answer_question(&self, host: &str, vmid: u32) -> Result<bool, OpError> {
        let (text, _) = self.run(host, &message_cmd(vmid), false)?;
        match parse_message(&text) {
            Message::None => Ok(false),
            Message::Moved { id, choice } => {
                let (out, ok) = self.run(host, &answer_cmd(vmid, &id, &choice), true)?;
                if !ok || vimcmd::parse_fault(&out).is_some() {
                    return Err(OpError::Failed(format!(
                        "answering the question of vmid {vmid}: {}",
                        excerpt(&out)
                    )));
                }
                Ok(true)
            }
            Message::Other(t) => Err(OpError::Failed(format!(
                "vmid {vmid} asks a question this engine does not answer: {t}"
            ))),
        }
    }
}

fn parse_error(e: ParseError) -> OpError {
    match e {
        ParseError::Fault(f) if f.name.ends_with("NotFound") => OpError::NotFound(f.to_string()),
        other => OpError::Failed(other.to_string()),
    }
}

/// True when vim-cmd says it could not lock the VM's files.
pub fn is_lock_error(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains("failed to lock the file")
}

/// `vim-cmd vmsvc/get.summary N`.
pub fn get_summary_cmd(vmid: u32) -> String {
    format!("vim-cmd vmsvc/get.summary {vmid}")
}

/// `vim-cmd vmsvc/power.suspend N`.
pub fn suspend_cmd(vmid: u32) -> String {
    format!("vim-cmd vmsvc/power.suspend {vmid}")
}

/// `vim-cmd vmsvc/message N`: the pending question, if any.
pub fn message_cmd(vmid: u32) -> String {
    format!("vim-cmd vmsvc/message {vmid}")
}

/// `vim-cmd vmsvc/message N 'ID' 'CHOICE'`: answers a question.
pub fn answer_cmd(vmid: u32, id: &str, choice: &str) -> String {
    format!(
        "vim-cmd vmsvc/message {vmid} {} {}",
        shell_quote(id),
        shell_quote(choice)
    )
}

/// `vim-cmd hostsvc/autostartmanager/update_autostartentry N none -1 -1 none -1 systemDefault`:
/// start and stop actions `none` remove the VM from the autostart configuration.
pub fn autostart_off_cmd(vmid: u32) -> String {
    format!(
        "vim-cmd hostsvc/autostartmanager/update_autostartentry {vmid} none -1 -1 none -1 systemDefault"
    )
}

/// `esxcli storage filesystem list`: the mounted datastores.
pub const DATASTORES_CMD: &str = "esxcli storage filesystem list";

/// Parses `esxcli storage filesystem list` (columns found from the dashes line): the volume
/// names of mounted VMFS, NFS and vSAN filesystems.
pub fn parse_filesystems(out: &str) -> Vec<String> {
    let mut lines = out.lines();
    let Some(dashes) = lines.by_ref().find(|l| l.trim_start().starts_with("---")) else {
        return Vec::new();
    };
    let mut cols: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in dashes
        .char_indices()
        .chain(std::iter::once((dashes.len(), ' ')))
    {
        match (c == '-', start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                cols.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    let field = |l: &str, n: usize| -> String {
        cols.get(n)
            .and_then(|&(a, b)| {
                let end = if n + 1 == cols.len() {
                    l.len()
                } else {
                    b.min(l.len())
                };
                l.get(a.min(l.len())..end)
            })
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let mut out: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .filter(|l| field(l, 3) == "true")
        .filter(|l| {
            let t = field(l, 4).to_ascii_lowercase();
            t.starts_with("vmfs") || t.starts_with("nfs") || t.starts_with("vsan")
        })
        .map(|l| field(l, 1))
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The file path of a `[datastore] dir/name.vmx` vmx: `/vmfs/volumes/datastore/dir/name.vmx`.
pub fn vmx_file_path(vmx: &str) -> Option<String> {
    let n = normalize_vmx(vmx);
    let rest = n.strip_prefix('[')?;
    let (ds, path) = rest.split_once("] ")?;
    (!ds.is_empty() && !path.is_empty()).then(|| format!("/vmfs/volumes/{ds}/{path}"))
}

/// `memSize = "4096"` from a vmx file.
pub fn parse_vmx_memsize(vmx_text: &str) -> Option<u64> {
    vmx_text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("memsize")
            .then(|| v.trim().trim_matches('"').parse().ok())?
    })
}

/// `memorySizeMB` from `vim-cmd vmsvc/get.summary`.
pub fn parse_summary_memory(out: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(" = ")?;
        (k == "memorySizeMB").then(|| v.trim().trim_end_matches(',').trim().parse().ok())?
    })
}

/// A pending VM question as `vim-cmd vmsvc/message N` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// No question.
    None,
    /// The "moved or copied" question: its id and the number of the "moved" choice.
    Moved {
        /// Message id (e.g. `_vmx1`).
        id: String,
        /// The choice that says "I moved it".
        choice: String,
    },
    /// Another question (excerpt).
    Other(String),
}

/// Parses `vim-cmd vmsvc/message N`: `Virtual machine message ID:` then the text and numbered
/// choices (`1. I Moved It (button.uuid.movedTheVM)`); `No message.` or nothing when none.
pub fn parse_message(out: &str) -> Message {
    let mut id: Option<String> = None;
    let mut choice: Option<String> = None;
    for l in out.lines() {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("Virtual machine message ") {
            id = Some(rest.trim_end_matches(':').trim().to_string());
            continue;
        }
        if let Some((num, label)) = t.split_once(". ") {
            if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                let low = label.to_ascii_lowercase();
                if choice.is_none() && (low.contains("moved") || low.contains("movedthevm")) {
                    choice = Some(num.to_string());
                }
            }
        }
    }
    match (id, choice) {
        (None, _) => Message::None,
        (Some(id), Some(choice)) if !id.is_empty() => Message::Moved { id, choice },
        _ => Message::Other(excerpt(out)),
    }
}

impl HostOps for EsxiHosts {
    fn list_registered(&self, host: &str) -> Result<Vec<Registered>, OpError> {
        let out = self.run_stdout(host, &vimcmd::getallvms())?;
        let vms = vimcmd::parse_getallvms(&out).map_err(parse_error)?;
        Ok(vms
            .into_iter()
            .map(|v| Registered {
                vmid: v.vmid,
                name: v.name,
                vmx: v.file,
            })
            .collect())
    }

    fn power_state(&self, host: &str, vmid: u32) -> Result<VmPower, OpError> {
        let (text, _) = self.run(host, &vimcmd::power_getstate(vmid), false)?;
        vimcmd::parse_power_state(&text)
            .map(VmPower::from)
            .map_err(parse_error)
    }

    fn vm_memory_mb(&self, host: &str, vm: &Registered) -> Result<Option<u64>, OpError> {
        let (text, ok) = self.run(host, &get_summary_cmd(vm.vmid), false)?;
        if let Some(m) = parse_summary_memory(&text).filter(|_| ok) {
            return Ok(Some(m));
        }
        let Some(path) = vmx_file_path(&vm.vmx) else {
            return Ok(None);
        };
        let (text, ok) = self.run(host, &format!("cat {}", shell_quote(&path)), false)?;
        Ok(if ok { parse_vmx_memsize(&text) } else { None })
    }

    fn host_memory_mb(&self, host: &str) -> Result<Option<u64>, OpError> {
        let out = self.run_stdout(host, &vimcmd::hostsummary())?;
        Ok(vimcmd::parse_hostsummary(&out)
            .ok()
            .and_then(|s| memory_mb_of(&s)))
    }

    fn datastores(&self, host: &str) -> Result<Vec<String>, OpError> {
        let (short, _) = self.timeouts(host)?;
        let out = self.conn(host)?.exec(DATASTORES_CMD, short, false)?;
        out.check(DATASTORES_CMD)
            .map_err(|e| OpError::Failed(e.to_string()))?;
        Ok(parse_filesystems(&out.stdout_text()))
    }

    fn register(&self, host: &str, vmx: &str) -> Result<u32, OpError> {
        let (text, ok) = self.run(host, &vimcmd::registervm(vmx, None), true)?;
        match vimcmd::parse_registervm(&text) {
            Ok(Some(id)) if ok => Ok(id),
            Ok(None) if ok => {
                let want = normalize_vmx(vmx);
                self.list_registered(host)?
                    .into_iter()
                    .find(|r| normalize_vmx(&r.vmx) == want)
                    .map(|r| r.vmid)
                    .ok_or_else(|| {
                        OpError::Failed(format!("registered {vmx} but it is not listed"))
                    })
            }
            Ok(_) => Err(OpError::Failed(format!("registervm: {}", excerpt(&text)))),
            Err(e) => Err(parse_error(e)),
        }
    }

    fn power_on(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        // A power-on that stops at the "moved or copied" question does not return until it is
        // answered: wait only the short timeout, then look for a question and read the state
        // back (the power-on goes on in hostd whatever happens to this vim-cmd).
        let (short, _) = self.timeouts(host)?;
        let r = self.run_within(host, &vimcmd::power_on(vmid), short, true);
        let failure = match r {
            Ok((text, ok)) => match vimcmd::check_power_op(&text) {
                Ok(()) if ok => None,
                Ok(()) => Some(OpError::Failed(format!("power.on: {}", excerpt(&text)))),
                Err(e) => Some(parse_error(e)),
            },
            Err(OpError::Timeout(t)) => Some(OpError::Timeout(t)),
            Err(e) => return Err(e),
        };
        // A power-on that returned success was not held by a question: read the state back.
        // One that did not may wait on (or fail because of) the "moved or copied" question.
        let Some(e) = failure else {
            return self.wait_power(host, vmid, VmPower::On, self.power_wait);
        };
        if self.answer_question(host, vmid)? {
            return self.wait_power(host, vmid, VmPower::On, self.power_wait);
        }
        // Already on (a resumed step) is success.
        if self.power_state(host, vmid).ok() == Some(VmPower::On) {
            return Ok(());
        }
        Err(e)
    }

    fn power_off(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        if self.power_state(host, vmid)? == VmPower::Off {
            return Ok(());
        }
        let (text, _) = self.run(host, &vimcmd::power_off(vmid), true)?;
        vimcmd::check_power_op(&text).map_err(parse_error)?;
        self.wait_power(host, vmid, VmPower::Off, self.power_wait)
    }

    fn shutdown_guest(&self, host: &str, vmid: u32, bound: Duration) -> Result<(), OpError> {
        if self.power_state(host, vmid)? == VmPower::Off {
            return Ok(());
        }
        let (text, _) = self.run(host, &vimcmd::power_shutdown(vmid), true)?;
        vimcmd::check_power_op(&text).map_err(parse_error)?;
        self.wait_power(host, vmid, VmPower::Off, bound)
    }

    fn suspend(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        if self.power_state(host, vmid)? == VmPower::Suspended {
            return Ok(());
        }
        let (text, _) = self.run(host, &suspend_cmd(vmid), true)?;
        vimcmd::check_power_op(&text).map_err(parse_error)?;
        self.wait_power(host, vmid, VmPower::Suspended, self.power_wait)
    }

    fn unregister(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        let (text, _) = self.run(host, &vimcmd::unregister(vmid), true)?;
        vimcmd::parse_unregister(&text).map_err(parse_error)
    }

    fn autostart_off(&self, host: &str, vmid: u32) -> Result<(), OpError> {
        let (text, ok) = self.run(host, &autostart_off_cmd(vmid), true)?;
        if let Some(f) = vimcmd::parse_fault(&text) {
            return Err(OpError::Failed(f.to_string()));
        }
        if !ok {
            return Err(OpError::Failed(format!("autostart: {}", excerpt(&text))));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// BMCs over IPMI.

/// [`BmcOps`] over IPMI with the project's session code, one session per operation.
pub struct IpmiBmcs {
    bmcs: BTreeMap<String, ResolvedBmc>,
    passwords: Mutex<BTreeMap<String, Secret>>,
}

impl IpmiBmcs {
    /// The BMCs of the inventory's hosts.
    pub fn new(inv: &Inventory) -> Self {
        IpmiBmcs {
            bmcs: inv
                .hosts
                .iter()
                .map(|h| (h.name.clone(), inv.bmc_for(h)))
                .collect(),
            passwords: Mutex::new(BTreeMap::new()),
        }
    }

    fn config(&self, host: &str) -> Result<IpmiConfig, OpError> {
        let b = self
            .bmcs
            .get(host)
            .ok_or_else(|| OpError::Config(format!("unknown host {host}")))?;
        let limit = Duration::from_secs(b.login_timeout_s.max(1));
        let password = match (&b.password, &b.password_script) {
            (Some(p), _) => p.clone(),
            (None, Some(script)) => {
                let cached = self
                    .passwords
                    .lock()
                    .ok()
                    .and_then(|m| m.get(host).cloned());
                match cached {
                    Some(p) => p,
                    None => {
                        let p = password_from_script(script, limit).map_err(OpError::Config)?;
                        if let Ok(mut m) = self.passwords.lock() {
                            m.insert(host.to_string(), p.clone());
                        }
                        p
                    }
                }
            }
            (None, None) => Secret::default(),
        };
        let mut cfg = IpmiConfig::new(&b.address, b.username.as_deref().unwrap_or(""), password);
        cfg.port = b.port;
        cfg.cipher = b.cipher;
        cfg.privilege = b.privlvl;
        cfg.kg = b.hexadecimal_kg.clone();
        cfg.timeout = limit;
        cfg.command_timeout = limit;
        cfg.validate()
            .map_err(|e| OpError::Config(format!("BMC of {host}: {e}")))?;
        Ok(cfg)
    }

    fn with_session<T>(
        &self,
        host: &str,
        f: impl FnOnce(&mut Session) -> Result<T, crate::transport::ipmi::IpmiError>,
    ) -> Result<T, OpError> {
        let cfg = self.config(host)?;
        let mut s =
            Session::open(&cfg).map_err(|e| OpError::Unreachable(format!("BMC of {host}: {e}")))?;
        let r = f(&mut s).map_err(|e| OpError::Failed(format!("BMC of {host}: {e}")));
        let _ = s.close();
        r
    }
}

impl BmcOps for IpmiBmcs {
    fn status(&self, host: &str) -> Result<ChassisPower, OpError> {
        self.with_session(host, |s| s.chassis_status())
    }

    fn power_off(&self, host: &str) -> Result<(), OpError> {
        self.with_session(host, |s| s.chassis_control(ChassisOp::PowerDown))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    #[test]
    fn vmx_paths_normalized() {
        assert_eq!(normalize_vmx("[ds1] a/a.vmx"), "[ds1] a/a.vmx");
        assert_eq!(normalize_vmx("/vmfs/volumes/ds1/a/a.vmx"), "[ds1] a/a.vmx");
        assert_eq!(normalize_vmx(" [ ds1 ]  a/a.vmx"), "[ds1] a/a.vmx");
    }

    #[test]
    fn messages_parsed() {
        let q = "Virtual machine message _vmx1:\nThis virtual machine might have been moved or copied.\n   0. Cancel (Cancel)\n   1. I _moved it (button.uuid.movedTheVM)\n   2. I _copied it (button.uuid.copiedTheVM) [default]\n";
        assert_eq!(
            parse_message(q),
            Message::Moved {
                id: "_vmx1".into(),
                choice: "1".into()
            }
        );
        assert_eq!(parse_message("No message.\n"), Message::None);
        assert_eq!(parse_message(""), Message::None);
        assert!(matches!(
            parse_message("Virtual machine message _vmx2:\nDisk full?\n   0. Retry\n"),
            Message::Other(_)
        ));
        assert_eq!(
            answer_cmd(7, "_vmx1", "1"),
            "vim-cmd vmsvc/message 7 '_vmx1' '1'"
        );
    }

    #[test]
    fn filesystems_parsed() {
        let out = "Mount Point                                        Volume Name  UUID                                 Mounted  Type    Size  Free\n-------------------------------------------------  -----------  -----------------------------------  -------  ------  ----  ----\n/vmfs/volumes/5a7c2f3e-11111111-2222-333333333333  ds shared    5a7c2f3e-11111111-2222-333333333333  true     VMFS-6  100   50\n/vmfs/volumes/aaaa                                 nfs1         aaaa                                 true     NFS41   100   50\n/vmfs/volumes/bbbb                                 BOOTBANK1    bbbb                                 true     vfat    100   50\n/vmfs/volumes/cccc                                 gone         cccc                                 false    VMFS-6  100   50\n";
        assert_eq!(parse_filesystems(out), ["ds shared", "nfs1"]);
        assert!(parse_filesystems("Error: Unknown command").is_empty());
    }

    #[test]
    fn summary_memory_and_lock_errors() {
        let s = "(vim.vm.Summary) {\n   config = (vim.vm.Summary.ConfigSummary) {\n      memorySizeMB = 4096,\n   }\n}\n";
        assert_eq!(parse_summary_memory(s), Some(4096));
        assert_eq!(parse_summary_memory("junk"), None);
        assert_eq!(
            parse_vmx_memsize("displayName = \"a\"\nmemSize = \"2048\"\n"),
            Some(2048)
        );
        assert_eq!(
            vmx_file_path("[ds 1] a/a.vmx").as_deref(),
            Some("/vmfs/volumes/ds 1/a/a.vmx")
        );
        assert!(is_lock_error(
            "Powering on VM:\nPower on failed: Failed to lock the file\n"
        ));
        assert!(!is_lock_error("Powering on VM:\n"));
    }

    #[test]
    fn bounded_command_gets_stdin() {
        let out = run_bounded("cat", Some(b"hello"), Duration::from_secs(5)).unwrap();
        assert_eq!(out, b"hello");
        assert!(run_bounded("sleep 5", None, Duration::from_millis(200)).is_err());
    }
}
