//! `ocf:fencekit:vm-evacuate`: the OCF resource agent face of `vm-evacuate`, thin over the
//! engine (no evacuation logic here).
//!
//! # When `vm-evacuate` is the resource agent
//! [`is_ocf_invocation`] decides, from the program name and the environment only:
//! 1. the program was invoked through a path `…/resource.d/<provider>/<agent>` (the parent of
//!    its directory is named `resource.d`), as Pacemaker, `crm_resource` and `ocf-tester` run
//!    `/usr/lib/ocf/resource.d/fencekit/vm-evacuate` (a symlink to `/usr/sbin/vm-evacuate`;
//!    the kernel keeps the name the program was invoked by). Every argument is then an OCF
//!    action; or
//! 2. `OCF_ROOT` or `OCF_RESOURCE_INSTANCE` is set and the only argument is an OCF action that
//!    is not a `vm-evacuate` command (`start`, `stop`, `monitor`, `meta-data`,
//!    `validate-all`, …; `status` stays the command).
//!
//! Otherwise it is the command line ([`super::cli`]), whose commands never collide with 2.
//!
//! # Actions
//! - `meta-data`: static XML valid against the installed `ra-api-1.dtd`; needs no
//!   configuration and works as any user.
//! - `validate-all`: the inventory loads (else `OCF_ERR_CONFIGURED`), `dry_run` is a boolean;
//!   at `OCF_CHECK_LEVEL` ≥ 10 every host and BMC must also answer (the `check` command).
//! - `start`: validates, then launches detection (`vm-evacuate watch --daemon`, a new
//!   session) and returns once that process holds the engine lock in `state_dir` and wrote
//!   `watch.pid`; an evacuation left open by a killed engine is continued by it. It also
//!   writes the marker `ocf-active` (with the boot id): the engine should run.
//! - `stop`: SIGTERM to the daemon, which finishes the step under way (recorded in the
//!   journal) and exits; waits within `OCF_RESKEY_CRM_meta_timeout` (less 2 s). A daemon that
//!   does not exit in time is left running and stop fails (never a half-recorded step).
//!   Removes the marker.
//! - `monitor` (probe or recurring; never any network): 0 while the daemon runs (even after a
//!   failed evacuation: those go to the report, syslog and `notify_command`),
//!   `OCF_ERR_CONFIGURED` if the inventory is no longer valid, `OCF_ERR_GENERIC` if the marker
//!   says it should run but the daemon is gone (Pacemaker restarts it), 7 otherwise.
//! - anything else: `OCF_ERR_UNIMPLEMENTED`.
//!
//! Errors are explained on stderr in an `ocf-exit-reason:` line (shown by `crm_mon`) and in
//! syslog.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::backend::{EsxiHosts, IpmiBmcs};
use super::engine::Engine;
use super::inventory;
use super::state::{self, StateDir};
use crate::protocol::log;

/// Success.
pub const OCF_SUCCESS: u8 = 0;
/// Generic error.
pub const OCF_ERR_GENERIC: u8 = 1;
/// Bad arguments.
pub const OCF_ERR_ARGS: u8 = 2;
/// Action not implemented.
pub const OCF_ERR_UNIMPLEMENTED: u8 = 3;
/// Insufficient privilege.
pub const OCF_ERR_PERM: u8 = 4;
/// The configuration is invalid.
pub const OCF_ERR_CONFIGURED: u8 = 6;
/// Cleanly stopped.
pub const OCF_NOT_RUNNING: u8 = 7;

/// OCF actions that are not `vm-evacuate` commands (rule 2 of [`is_ocf_invocation`]).
pub const OCF_ONLY_ACTIONS: &[&str] = &[
    "start",
    "stop",
    "monitor",
    "meta-data",
    "validate-all",
    "promote",
    "demote",
    "notify",
    "reload",
    "reload-agent",
    "migrate_to",
    "migrate_from",
    "recover",
    "restart",
    "methods",
];

/// The daemon's pid file in the state directory (`PID STARTTIME`).
pub const PID_FILE: &str = "watch.pid";
/// The "should run" marker in the state directory (the boot id it was written in).
pub const ACTIVE_FILE: &str = "ocf-active";
/// The daemon's stderr (timestamped log lines) in the state directory.
pub const LOG_FILE: &str = "daemon.log";

/// Default operation timeout when Pacemaker passes none (ms).
const DEFAULT_TIMEOUT_MS: u64 = 20_000;
/// Kept free at the end of a start or stop timeout.
const MARGIN: Duration = Duration::from_secs(2);

/// The meta-data (OCF 1.0 types only; element order and action timeouts as the DTD wants).
pub const META_DATA: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="vm-evacuate" version="1.0">
<version>1.0</version>
<longdesc lang="en">
Restarts the virtual machines of a dead free-ESXi host on the other hosts. While the resource
runs, a detection daemon (vm-evacuate watch) probes every host of the inventory (SSH and
vim-cmd, and the chassis power through its BMC) every detect_interval_s seconds. A host that
fails detect_failures probes in a row is powered off through its BMC and read back as off
before anything else happens; then its VMs are registered and powered on elsewhere, following
the inventory's placement rules, tiers and max_parallel. Every side effect is journaled in
state_dir (an intent before it, the outcome after it); an engine that was killed is continued
by the next start without registering or starting a VM twice. No VM moves while more than
brake_percent of the hosts are failed.

Run exactly one instance (a primitive, not a clone); a lock in state_dir backs this up.

monitor succeeds while the detection daemon runs, even after an evacuation that failed: those
go to the report (state_dir/reports), syslog and the inventory's notify_command. monitor
fails with OCF_ERR_CONFIGURED when the inventory became invalid, and with OCF_ERR_GENERIC when
the daemon is gone (Pacemaker then restarts the resource). A probe never touches the network.
stop lets the daemon finish the step under way and record it, then waits for it to exit.

The same program is the vm-evacuate command (status, plan, run, return, ...) when it is not
invoked as a resource agent.
</longdesc>
<shortdesc lang="en">Restart the VMs of a dead free-ESXi host on the other hosts (fenced through its BMC first)</shortdesc>
<parameters>
<parameter name="config" unique="0" required="0">
<longdesc lang="en">
The evacuation inventory (TOML): policy, SSH and BMC credentials, hosts, VM settings and
placement constraints. See the vm-evacuate documentation. Readable by root only when it holds
a password. Default: /etc/fencekit/evacuate.toml.
</longdesc>
<shortdesc lang="en">Inventory file</shortdesc>
<content type="string" default="/etc/fencekit/evacuate.toml" />
</parameter>
<parameter name="state_dir" unique="1" required="0">
<longdesc lang="en">
State directory: host snapshots, probe history, the journal, reports, the engine lock, the
daemon's pid file (watch.pid) and log (daemon.log). Keep it on local disk of the node.
Default: /var/lib/fencekit/evacuate.
</longdesc>
<shortdesc lang="en">State directory</shortdesc>
<content type="string" default="/var/lib/fencekit/evacuate" />
</parameter>
<parameter name="dry_run" unique="0" required="0">
<longdesc lang="en">
Detect and plan only: when a host fails, log what a rescue would do (in syslog and
daemon.log) and change nothing: no fence, no registration, no power-on. Default: false.
</longdesc>
<shortdesc lang="en">Plan only, change nothing</shortdesc>
<content type="boolean" default="false" />
</parameter>
</parameters>
<actions>
<action name="start" timeout="20s" />
<action name="stop" timeout="60s" />
<action name="monitor" timeout="20s" interval="10s" depth="0" />
<action name="validate-all" timeout="20s" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
"#;

const USAGE: &str = "usage: vm-evacuate {start|stop|monitor|meta-data|validate-all} (as the OCF \
resource agent ocf:fencekit:vm-evacuate; parameters in OCF_RESKEY_config, \
OCF_RESKEY_state_dir, OCF_RESKEY_dry_run)";

/// Whether this run of the program is the resource agent (see the module docs for the rule).
pub fn is_ocf_invocation(
    argv0: &OsStr,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> bool {
    let by_path = Path::new(argv0)
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|n| n == "resource.d");
    if by_path {
        return true;
    }
    let ocf_env = ["OCF_ROOT", "OCF_RESOURCE_INSTANCE"]
        .iter()
        .any(|k| env(k).is_some_and(|v| !v.is_empty()));
    match args {
        [one] => ocf_env && OCF_ONLY_ACTIONS.iter().any(|a| one == *a),
        _ => false,
    }
}

/// What the agent reads from its environment.
#[derive(Debug, Clone)]
pub struct Env {
    /// `OCF_*` and other variables.
    pub vars: BTreeMap<String, String>,
    /// The `vm-evacuate` program (started as the daemon).
    pub exe: PathBuf,
}

impl Env {
    /// The process environment and `/proc/self/exe`.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter(|(k, _)| k.starts_with("OCF_") || k == "HA_debug")
                .collect(),
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/sbin/vm-evacuate")),
        }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.get(&format!("OCF_RESKEY_{name}"))
    }

    /// `config`.
    pub fn config(&self) -> PathBuf {
        PathBuf::from(self.param("config").unwrap_or(inventory::DEFAULT_PATH))
    }

    /// `state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(self.param("state_dir").unwrap_or(state::DEFAULT_STATE_DIR))
    }

    /// `dry_run`, or why its value is not a boolean.
    pub fn dry_run(&self) -> Result<bool, String> {
        match self.param("dry_run") {
            None => Ok(false),
            Some(v) => parse_bool(v)
                .ok_or_else(|| format!("dry_run={v:?} is not a boolean (true or false)")),
        }
    }

    /// The operation's timeout (`OCF_RESKEY_CRM_meta_timeout`, ms).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(
            self.get("OCF_RESKEY_CRM_meta_timeout")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(DEFAULT_TIMEOUT_MS),
        )
    }

    fn check_level(&self) -> u32 {
        self.get("OCF_CHECK_LEVEL")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Pacemaker's idea of a boolean (`crm_is_true`).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "1" => Some(true),
        "false" | "no" | "off" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Output streams.
pub struct Io<'a> {
    /// stdout (meta-data, usage).
    pub out: &'a mut dyn Write,
    /// stderr (`ocf-exit-reason:` lines).
    pub err: &'a mut dyn Write,
}

/// Runs the agent: `args` are the arguments after the program name (the action first).
pub fn main_with(args: &[OsString], env: &Env, io: &mut Io<'_>) -> u8 {
    let _ = log::init("vm-evacuate", true, false, None);
    let action = match args.first().and_then(|a| a.to_str()) {
        Some(a) => a,
        None => {
            let _ = writeln!(io.err, "{USAGE}");
            return OCF_ERR_UNIMPLEMENTED;
        }
    };
    match action {
        "meta-data" => {
            let _ = io.out.write_all(META_DATA.as_bytes());
            OCF_SUCCESS
        }
        "usage" | "help" | "--help" | "-h" => {
            let _ = writeln!(io.out, "{USAGE}");
            OCF_SUCCESS
        }
        "validate-all" => match validate(env) {
            Ok(()) => OCF_SUCCESS,
            Err((rc, why)) => reason(io, rc, &why),
        },
        "start" => match start(env) {
            Ok(()) => OCF_SUCCESS,
            Err((rc, why)) => reason(io, rc, &why),
        },
        "stop" => match stop(env) {
            Ok(()) => OCF_SUCCESS,
            Err((rc, why)) => reason(io, rc, &why),
        },
        "monitor" => match monitor(env) {
            Ok(rc) => rc,
            Err((rc, why)) => reason(io, rc, &why),
        },
        other => {
            let _ = writeln!(io.err, "vm-evacuate: action {other:?} is not implemented");
            let _ = writeln!(io.err, "{USAGE}");
            OCF_ERR_UNIMPLEMENTED
        }
    }
}

/// Writes the `ocf-exit-reason:` line (and logs it); returns `rc`.
fn reason(io: &mut Io<'_>, rc: u8, why: &str) -> u8 {
    let one_line = why.replace('\n', " ");
    let _ = writeln!(io.err, "ocf-exit-reason:{one_line}");
    log::error(&one_line);
    rc
}

type Fail = (u8, String);

/// Loads the inventory and checks the parameters.
fn load(env: &Env) -> Result<inventory::Inventory, Fail> {
    env.dry_run().map_err(|e| (OCF_ERR_CONFIGURED, e))?;
    let config = env.config();
    inventory::load(&config).map_err(|e| {
        (
            OCF_ERR_CONFIGURED,
            format!("inventory {}: {e}", config.display()),
        )
    })
}

fn validate(env: &Env) -> Result<(), Fail> {
    let inv = load(env)?;
    let sd = env.state_dir();
    if sd.exists() && !sd.is_dir() {
        return Err((
            OCF_ERR_CONFIGURED,
            format!("state_dir {} is not a directory", sd.display()),
        ));
    }
    if env.check_level() >= 10 {
        let st = StateDir::new(sd);
        let hosts = EsxiHosts::new(&inv);
        let bmcs = IpmiBmcs::new(&inv);
        let quiet = |_: &str| {};
        let eng = Engine::new(&inv, &st, &hosts, &bmcs, &quiet);
        let bad: Vec<String> = eng
            .probe_all(true)
            .values()
            .filter(|p| !p.good())
            .map(|p| format!("{}: {}", p.host, p.error()))
            .collect();
        if !bad.is_empty() {
            return Err((OCF_ERR_GENERIC, bad.join("; ")));
        }
    }
    Ok(())
}

/// The daemon recorded in the state directory's pid file, when it still runs.
pub fn running_daemon(state_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(state_dir.join(PID_FILE)).ok()?;
    let mut w = text.split_whitespace();
    let pid: u32 = w.next()?.parse().ok()?;
    let start: u64 = w.next()?.parse().ok()?;
    (proc_start_time(pid) == Some(start)).then_some(pid)
}

/// A live (not zombie) process's start time in clock ticks since boot.
fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    // Field 22 of stat; `rest` starts at field 3.
    fields.get(19)?.parse().ok()
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Written by the daemon once it holds the engine lock.
pub fn write_pid_file(state_dir: &Path) -> Result<(), String> {
    let pid = std::process::id();
    let start = proc_start_time(pid).ok_or("own start time not readable in /proc")?;
    let tmp = state_dir.join(format!(".{PID_FILE}.tmp"));
    let dest = state_dir.join(PID_FILE);
    fs::write(&tmp, format!("{pid} {start}\n"))
        .and_then(|()| fs::rename(&tmp, &dest))
        .map_err(|e| format!("{}: {e}", dest.display()))
}

/// Removed by the daemon on a clean exit (it still holds the lock then).
pub fn remove_pid_file(state_dir: &Path) {
    let _ = fs::remove_file(state_dir.join(PID_FILE));
}

/// The marker says the engine should run (written in this boot).
fn should_run(state_dir: &Path) -> bool {
    fs::read_to_string(state_dir.join(ACTIVE_FILE))
        .is_ok_and(|t| t.split_whitespace().next() == Some(boot_id().as_str()))
}

fn monitor(env: &Env) -> Result<u8, Fail> {
    let sd = env.state_dir();
    if running_daemon(&sd).is_some() {
        // The daemon works from the inventory it loaded; one that became invalid would stop
        // the next start: say so now.
        load(env)?;
        return Ok(OCF_SUCCESS);
    }
    if should_run(&sd) {
        return Err((
            OCF_ERR_GENERIC,
            format!(
                "the detection daemon is gone (see {} and syslog); it must be restarted",
                sd.join(LOG_FILE).display()
            ),
        ));
    }
    Ok(OCF_NOT_RUNNING)
}

fn start(env: &Env) -> Result<(), Fail> {
    let deadline = Instant::now() + env.timeout().saturating_sub(MARGIN);
    validate(env)?;
    let dry = env.dry_run().map_err(|e| (OCF_ERR_CONFIGURED, e))?;
    let sd = env.state_dir();
    let st = StateDir::new(&sd);
    // Creates the directory (0750).
    st.journal().map_err(|e| (OCF_ERR_PERM, e))?;
    let mark = || {
        fs::write(
            sd.join(ACTIVE_FILE),
            format!(
                "{} {}\n",
                boot_id(),
                env.get("OCF_RESOURCE_INSTANCE").unwrap_or("-")
            ),
        )
        .map_err(|e| {
            (
                OCF_ERR_PERM,
                format!("{}: {e}", sd.join(ACTIVE_FILE).display()),
            )
        })
    };
    if running_daemon(&sd).is_some() {
        return mark();
    }
    let logf = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sd.join(LOG_FILE))
        .map_err(|e| {
            (
                OCF_ERR_PERM,
                format!("{}: {e}", sd.join(LOG_FILE).display()),
            )
        })?;
    let logf2 = logf
        .try_clone()
        .map_err(|e| (OCF_ERR_GENERIC, format!("log file: {e}")))?;
    let mut cmd = Command::new(&env.exe);
    cmd.arg("watch")
        .arg("--daemon")
        .arg("--config")
        .arg(env.config())
        .arg("--state-dir")
        .arg(&sd);
    if dry {
        cmd.arg("--dry-run");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(logf)
        .stderr(logf2)
        .env_remove("OCF_ROOT")
        .env_remove("OCF_RESOURCE_INSTANCE")
        .spawn()
        .map_err(|e| {
            (
                OCF_ERR_GENERIC,
                format!("cannot start {}: {e}", env.exe.display()),
            )
        })?;
    let pid = child.id();
    loop {
        if running_daemon(&sd) == Some(pid) {
            return mark();
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err((
                OCF_ERR_GENERIC,
                format!(
                    "the detection daemon exited at once ({status}): {}",
                    last_error(&sd.join(LOG_FILE))
                ),
            ));
        }
        if Instant::now() >= deadline {
            // Not ready in time: do not leave it behind a failed start.
            let _ = child.kill();
            let _ = child.wait();
            return Err((
                OCF_ERR_GENERIC,
                "the detection daemon did not become ready within the start timeout".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last line of the daemon log, for an exit reason.
fn last_error(log: &Path) -> String {
    fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no message".into())
}

fn stop(env: &Env) -> Result<(), Fail> {
    let deadline = Instant::now() + env.timeout().saturating_sub(MARGIN);
    let sd = env.state_dir();
    if let Some(pid) = running_daemon(&sd) {
        let p = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
        log::warn(&format!(
            "stop: asked the detection daemon (pid {pid}) to finish its step and exit"
        ));
        while running_daemon(&sd) == Some(pid) {
            if Instant::now() >= deadline {
                return Err((
                    OCF_ERR_GENERIC,
                    format!(
                        "the detection daemon (pid {pid}) is still finishing a step at the \
                         end of the stop timeout; it was left running so that no step is \
                         half-recorded (raise the stop timeout)"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for f in [ACTIVE_FILE, PID_FILE] {
        match fs::remove_file(sd.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err((OCF_ERR_GENERIC, format!("{}: {e}", sd.join(f).display())));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| m.get(k).map(OsString::from)
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn invocation_rule() {
        let none = env_of(&[]);
        let ocf = env_of(&[("OCF_ROOT", "/usr/lib/ocf")]);
        let inst = env_of(&[("OCF_RESOURCE_INSTANCE", "evac")]);
        let installed = OsStr::new("/usr/lib/ocf/resource.d/fencekit/vm-evacuate");
        let sbin = OsStr::new("/usr/sbin/vm-evacuate");
        // By path: whatever the environment and arguments.
        assert!(is_ocf_invocation(installed, &os(&["monitor"]), &none));
        assert!(is_ocf_invocation(installed, &os(&["status"]), &none));
        assert!(is_ocf_invocation(installed, &os(&[]), &none));
        assert!(is_ocf_invocation(
            OsStr::new("/tmp/x/resource.d/fencekit/vm-evacuate"),
            &os(&["start"]),
            &none
        ));
        // Not by path: only with OCF variables and a single OCF-only action.
        assert!(!is_ocf_invocation(sbin, &os(&["start"]), &none));
        assert!(is_ocf_invocation(sbin, &os(&["start"]), &ocf));
        assert!(is_ocf_invocation(sbin, &os(&["meta-data"]), &inst));
        assert!(!is_ocf_invocation(sbin, &os(&["status"]), &ocf));
        assert!(!is_ocf_invocation(sbin, &os(&["watch"]), &ocf));
        assert!(!is_ocf_invocation(sbin, &os(&["start", "--x"]), &ocf));
        assert!(!is_ocf_invocation(
            OsStr::new("vm-evacuate"),
            &os(&["check"]),
            &ocf
        ));
        assert!(!is_ocf_invocation(
            OsStr::new("/usr/lib/ocf/fencekit/vm-evacuate"),
            &os(&["check"]),
            &none
        ));
    }

    fn run(action: &str, env: &Env) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let rc = {
            let mut io = Io {
                out: &mut out,
                err: &mut err,
            };
            main_with(&os(&[action]), env, &mut io)
        };
        (
            rc,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            exe: PathBuf::from("/nonexistent/vm-evacuate"),
        }
    }

    #[test]
    fn meta_data_lists_parameters_and_actions_and_needs_nothing() {
        let (rc, out, err) = run("meta-data", &env(&[]));
        assert_eq!(rc, OCF_SUCCESS);
        assert!(err.is_empty());
        assert!(out.starts_with(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"
        ));
        for p in ["config", "state_dir", "dry_run"] {
            assert!(out.contains(&format!("<parameter name=\"{p}\"")), "{p}");
        }
        for a in ["start", "stop", "monitor", "validate-all", "meta-data"] {
            assert!(
                out.contains(&format!("<action name=\"{a}\" timeout=")),
                "{a}"
            );
        }
        for t in out.split("type=\"").skip(1) {
            let ty = t.split('"').next().unwrap();
            assert!(
                ["string", "integer", "boolean", "time"].contains(&ty),
                "{ty}"
            );
        }
    }

    #[test]
    fn unknown_actions_are_unimplemented() {
        for a in [
            "notify",
            "promote",
            "reload",
            "migrate_to",
            "status",
            "frobnicate",
        ] {
            assert_eq!(run(a, &env(&[])).0, OCF_ERR_UNIMPLEMENTED, "{a}");
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        assert_eq!(main_with(&[], &env(&[]), &mut io), OCF_ERR_UNIMPLEMENTED);
    }

    const INV: &str = "[ssh]\nusername = \"root\"\n[[host]]\nname = \"esx1\"\naddress = \"192.0.2.1\"\nbmc_address = \"192.0.2.2\"\n";

    #[test]
    fn validate_and_monitor_without_a_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("evacuate.toml");
        let sd = dir.path().join("st");
        let c = cfg.to_str().unwrap();
        let s = sd.to_str().unwrap();
        let e = env(&[("OCF_RESKEY_config", c), ("OCF_RESKEY_state_dir", s)]);
        // Missing inventory: configured error, with a reason naming the file.
        let (rc, _, err) = run("validate-all", &e);
        assert_eq!(rc, OCF_ERR_CONFIGURED);
        assert!(err.starts_with("ocf-exit-reason:"), "{err}");
        assert!(err.contains(c), "{err}");
        // Stopped and never started: 7, whatever the configuration (a probe needs none).
        assert_eq!(run("monitor", &e).0, OCF_NOT_RUNNING);
        fs::write(&cfg, INV).unwrap();
        assert_eq!(run("validate-all", &e).0, OCF_SUCCESS);
        let bad = env(&[
            ("OCF_RESKEY_config", c),
            ("OCF_RESKEY_state_dir", s),
            ("OCF_RESKEY_dry_run", "maybe"),
        ]);
        let (rc, _, err) = run("validate-all", &bad);
        assert_eq!(rc, OCF_ERR_CONFIGURED);
        assert!(err.contains("dry_run"), "{err}");
        // Stop of a stopped resource succeeds, twice.
        assert_eq!(run("stop", &e).0, OCF_SUCCESS);
        assert_eq!(run("stop", &e).0, OCF_SUCCESS);
        // The marker of this boot without a daemon: the daemon is gone.
        fs::create_dir_all(&sd).unwrap();
        fs::write(sd.join(ACTIVE_FILE), format!("{} evac\n", boot_id())).unwrap();
        let (rc, _, err) = run("monitor", &e);
        assert_eq!(rc, OCF_ERR_GENERIC);
        assert!(err.contains("gone"), "{err}");
        // A marker from another boot is stale: cleanly stopped.
        fs::write(sd.join(ACTIVE_FILE), "another-boot evac\n").unwrap();
        assert_eq!(run("monitor", &e).0, OCF_NOT_RUNNING);
        // A pid file naming a dead or reused pid is no daemon.
        fs::write(sd.join(PID_FILE), format!("{} 1\n", std::process::id())).unwrap();
        assert_eq!(running_daemon(&sd), None);
        write_pid_file(&sd).unwrap();
        assert_eq!(running_daemon(&sd), Some(std::process::id()));
        // With a "daemon" running (this process), monitor says 0 with a valid inventory and
        // OCF_ERR_CONFIGURED with an invalid one.
        assert_eq!(run("monitor", &e).0, OCF_SUCCESS);
        fs::write(&cfg, "[policy]\nbogus = 1\n").unwrap();
        let (rc, _, err) = run("monitor", &e);
        assert_eq!(rc, OCF_ERR_CONFIGURED);
        assert!(err.contains("bogus"), "{err}");
        remove_pid_file(&sd);
        assert_eq!(running_daemon(&sd), None);
    }

    #[test]
    fn a_start_whose_daemon_cannot_run_fails_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("evacuate.toml");
        fs::write(&cfg, INV).unwrap();
        let sd = dir.path().join("st");
        let e = env(&[
            ("OCF_RESKEY_config", cfg.to_str().unwrap()),
            ("OCF_RESKEY_state_dir", sd.to_str().unwrap()),
        ]);
        let (rc, _, err) = run("start", &e);
        assert_eq!(rc, OCF_ERR_GENERIC);
        assert!(err.contains("/nonexistent/vm-evacuate"), "{err}");
        assert!(!sd.join(ACTIVE_FILE).exists());
    }

    #[test]
    fn booleans_and_timeouts() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("no"), Some(false));
        assert_eq!(parse_bool("2"), None);
        assert_eq!(env(&[]).timeout(), Duration::from_secs(20));
        assert_eq!(
            env(&[("OCF_RESKEY_CRM_meta_timeout", "90000")]).timeout(),
            Duration::from_secs(90)
        );
        assert_eq!(env(&[]).config(), PathBuf::from(inventory::DEFAULT_PATH));
        assert_eq!(env(&[]).dry_run(), Ok(false));
    }
}
