//! A real single-node Pacemaker cluster (corosync + pacemakerd on 127.0.0.1) for end-to-end
//! fence-agent tests, driven through `scripts/pcmk.sh`.
//!
//! Only one Pacemaker fits on a machine (its IPC names are fixed), so [`Cluster::up`] takes two
//! locks that it holds until the cluster is torn down: a process-wide `static` mutex (tests of
//! this binary run on parallel threads) and an exclusive `flock` on [`LOCK_PATH`] (other test
//! processes and other checkouts on the machine). The kernel drops the file lock if the test
//! process dies; the next [`Cluster::up`] then restarts any cluster the dead run left behind
//! (same state dir) and removes its agent symlinks.
//!
//! Bringing a cluster up takes about 5 s and tearing it down 1–5 s, so run all Pacemaker
//! scenarios of a test in sequence on one `Cluster`, cleaning up between them with
//! [`Cluster::delete_device`].
//!
//! Typical use:
//! ```ignore
//! if let Some(why) = pacemaker::unavailable() {
//!     assert!(!pacemaker::peers_required(), "pacemaker peer missing: {why}");
//!     println!("skipped: {why}");
//!     return;
//! }
//! let cluster = Cluster::up(&pacemaker::agents_dir()?)?;
//! cluster.pcs(&["stonith", "create", "dev", "fence_x", "pcmk_host_list=target1"]);
//! cluster.wait_running("dev", Duration::from_secs(60))?;
//! let out = cluster.stonith_admin(&["--reboot", "target1"]);
//! cluster.delete_device("dev")?;
//! cluster.shutdown()?; // or just drop it
//! ```

#![allow(dead_code)]

use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Machine-wide lock file: whoever holds an exclusive `flock` on it may run Pacemaker.
pub const LOCK_PATH: &str = "/tmp/fencekit-pacemaker.lock";
/// Default state dir of `scripts/pcmk.sh` (PID file, daemon output, saved configs, agent
/// records); `FENCEKIT_PCMK_STATE` overrides it.
pub const DEFAULT_STATE_DIR: &str = "/var/tmp/fencekit-pcmk";
/// Pacemaker's log file (all daemons; grep `pacemaker-fenced` for agent runs).
pub const PACEMAKER_LOG: &str = "/var/log/pacemaker/pacemaker.log";
/// How long [`Cluster::up`] waits for another holder of the machine-wide lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(900);
/// Upper bound for any single command the helper runs (pcs, stonith_admin, the script).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Binaries the harness needs.
const NEEDED: &[&str] = &[
    "corosync",
    "corosync-quorumtool",
    "pacemakerd",
    "pcs",
    "stonith_admin",
    "crm_resource",
    "crm_mon",
    "crm_attribute",
    "cibadmin",
    "timeout",
    "setsid",
    "flock",
];

/// Serialises clusters between the test threads of this process.
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// True when a missing peer must fail the test instead of skipping it (the one check of
/// `tests/support`).
pub use crate::support::simulators_required as peers_required;

/// Why a cluster cannot run on this machine (not root, a binary missing), or `None`.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some(
            "Pacemaker tests need root (they run corosync/pacemakerd and write /usr/sbin)".into(),
        );
    }
    let missing: Vec<&str> = NEEDED
        .iter()
        .copied()
        .filter(|b| find_binary(b).is_none())
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "missing {} (run scripts/deps.sh)",
            missing.join(", ")
        ))
    }
}

/// Finds `name` in `PATH` or the usual sbin/bin directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .iter()
            .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The cargo target profile dir holding the agent binaries (e.g. `target/debug`): the parent
/// of the `deps/` dir the running test binary lives in.
pub fn agents_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let deps = exe.parent().ok_or("test binary has no parent dir")?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().ok_or("deps dir has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

/// The state dir the script uses: `$FENCEKIT_PCMK_STATE` or [`DEFAULT_STATE_DIR`].
pub fn state_dir() -> PathBuf {
    std::env::var_os("FENCEKIT_PCMK_STATE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from)
}

/// `scripts/pcmk.sh` in this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("pcmk.sh")
}

/// Runs `program args…` under coreutils `timeout` (SIGTERM at `limit`, SIGKILL 5 s later;
/// exit 124 on expiry), stdin from /dev/null, with `LC_ALL=C` for stable messages.
pub fn run_with_timeout(program: &str, args: &[&str], limit: Duration) -> Output {
    let secs = limit.as_secs().max(1).to_string();
    let res = Command::new("timeout")
        .args(["-k", "5", secs.as_str(), program])
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output();
    res.unwrap_or_else(|e| failed_output(&format!("cannot run {program}: {e}")))
}

/// An `Output` standing for a command that could not be started (exit status 127).
fn failed_output(msg: &str) -> Output {
    Output {
        status: ExitStatus::from_raw(127 << 8),
        stdout: Vec::new(),
        stderr: msg.as_bytes().to_vec(),
    }
}

/// `program args…` rendered with its exit status, stdout and stderr, for error messages.
pub fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Takes the machine-wide file lock, polling up to [`LOCK_WAIT`].
fn lock_machine() -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(LOCK_PATH)
        .map_err(|e| format!("open {LOCK_PATH}: {e}"))?;
    let start = Instant::now();
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(e) if start.elapsed() >= LOCK_WAIT => {
                return Err(format!(
                    "{LOCK_PATH} still locked after {} s ({e}): another Pacemaker test runs",
                    LOCK_WAIT.as_secs()
                ))
            }
            Err(_) => sleep(Duration::from_millis(500)),
        }
    }
}

/// Non-zombie processes named corosync, pacemakerd or pacemaker-* (pid, name).
pub fn cluster_processes() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let (_, comm) = head.split_once(" (")?;
            let zombie = rest.starts_with('Z') || rest.starts_with('X');
            let ours = comm == "corosync" || comm == "pacemakerd" || comm.starts_with("pacemaker-");
            (ours && !zombie).then(|| (pid, comm.to_string()))
        })
        .collect()
}

/// A running single-node cluster. Dropping it removes the agent symlinks, tears the cluster
/// down and releases the locks; [`Cluster::shutdown`] does the same and reports errors.
pub struct Cluster {
    state: PathBuf,
    node: String,
    running: bool,
    // Released after `drop` has torn the cluster down (fields drop after `Drop::drop`).
    _machine_lock: File,
    _thread_lock: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Takes the locks, brings a fresh cluster up (`pcmk.sh up --restart`, so a cluster left by
    /// a crashed run is replaced) and symlinks every executable `fence_*` in `agents_dir` into
    /// /usr/sbin, and `vm-evacuate` as /usr/sbin/vm-evacuate with
    /// /usr/lib/ocf/resource.d/fencekit/vm-evacuate pointing to it, the packaged layout of the
    /// resource agent `ocf:fencekit:vm-evacuate` (`pcmk.sh install-agents`). Errors carry the
    /// script's output.
    pub fn up(agents_dir: &Path) -> Result<Cluster, String> {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        let thread_lock = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let machine_lock = lock_machine()?;
        let state = state_dir();
        // Symlinks a crashed run left behind.
        script_ok(&state, &["remove-agents"])?;
        let mut cluster = Cluster {
            state,
            node: String::new(),
            running: true,
            _machine_lock: machine_lock,
            _thread_lock: thread_lock,
        };
        // From here on, Drop tears down whatever was started.
        script_ok(&cluster.state, &["up", "--restart"])?;
        let agents = agents_dir.to_str().ok_or("agents dir is not UTF-8")?;
        script_ok(&cluster.state, &["install-agents", agents])?;
        let uname = run_with_timeout("uname", &["-n"], Duration::from_secs(10));
        cluster.node = String::from_utf8_lossy(&uname.stdout).trim().to_string();
        Ok(cluster)
    }

    /// The cluster node's name (`uname -n`). Never fence it; use made-up targets.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The script's state dir (PID file, `corosync.out`, `pacemaker.out`, `agents`).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Runs `pcs args…` (no pcsd needed for stonith/property/status commands).
    pub fn pcs(&self, args: &[&str]) -> Output {
        run_with_timeout("pcs", args, COMMAND_TIMEOUT)
    }

    /// Runs `stonith_admin args…`, e.g. `["--reboot", "target1"]` (rc 0 / 1 / 124).
    pub fn stonith_admin(&self, args: &[&str]) -> Output {
        run_with_timeout("stonith_admin", args, COMMAND_TIMEOUT)
    }

    /// Runs `crm_resource args…`.
    pub fn crm_resource(&self, args: &[&str]) -> Output {
        run_with_timeout("crm_resource", args, COMMAND_TIMEOUT)
    }

    /// Runs `crm_mon -1` (one-shot status text).
    pub fn crm_mon(&self) -> Output {
        run_with_timeout("crm_mon", &["-1"], COMMAND_TIMEOUT)
    }

    /// Waits until `resource` has really started: `crm_mon --output-as=xml` shows it with
    /// `role="Started"` and `failed="false"`. (`crm_resource --locate` is not enough: it says
    /// "is running on" while the start, i.e. the agent's `monitor`, is still in progress and
    /// even when that start then fails.) Fails at once when a failed start is recorded, else
    /// after `timeout`; the error holds `crm_mon -1`. Polls every 250 ms.
    pub fn wait_running(&self, resource: &str, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let xml = self.crm_mon_xml();
            if let Some(attrs) = resource_attrs(&xml, resource) {
                if attrs.contains(r#" role="Started""#) && attrs.contains(r#" failed="false""#) {
                    return Ok(());
                }
            }
            let failed_start = format!(r#"<failure op_key="{resource}_start_0""#);
            if xml.contains(&failed_start) || start.elapsed() >= timeout {
                let why = if xml.contains(&failed_start) {
                    "its start failed".to_string()
                } else {
                    format!("not started after {} s", timeout.as_secs())
                };
                return Err(format!(
                    "resource {resource}: {why}\n{}",
                    describe("crm_mon -1", &self.crm_mon())
                ));
            }
            sleep(Duration::from_millis(250));
        }
    }

    /// The role crm_mon reports for `resource` (`Starting`, `Started`, `Stopped`, …), or
    /// `None` if crm_mon does not list it.
    pub fn resource_role(&self, resource: &str) -> Option<String> {
        let xml = self.crm_mon_xml();
        let attrs = resource_attrs(&xml, resource)?;
        let (_, rest) = attrs.split_once(r#" role=""#)?;
        rest.split_once('"').map(|(role, _)| role.to_string())
    }

    /// `crm_mon -1 --output-as=xml` stdout (empty if it failed).
    pub fn crm_mon_xml(&self) -> String {
        let out = run_with_timeout("crm_mon", &["-1", "--output-as=xml"], COMMAND_TIMEOUT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Deletes a fence device and clears the failure and fencing history, so the next
    /// scenario starts clean (even one that reuses `id`): `pcs stonith delete id --force`,
    /// `crm_resource --cleanup`, `stonith_admin --cleanup --history '*'`.
    pub fn delete_device(&self, id: &str) -> Result<(), String> {
        let out = self.pcs(&["stonith", "delete", id, "--force"]);
        if !out.status.success() {
            return Err(describe(&format!("pcs stonith delete {id} --force"), &out));
        }
        let out = self.crm_resource(&["--cleanup"]);
        if !out.status.success() {
            return Err(describe("crm_resource --cleanup", &out));
        }
        let out = self.stonith_admin(&["--cleanup", "--history", "*"]);
        if !out.status.success() {
            return Err(describe("stonith_admin --cleanup --history '*'", &out));
        }
        Ok(())
    }

    /// Current size of [`PACEMAKER_LOG`]; pass it to [`Cluster::log_since`] later.
    pub fn log_offset(&self) -> u64 {
        std::fs::metadata(PACEMAKER_LOG).map_or(0, |m| m.len())
    }

    /// What [`PACEMAKER_LOG`] gained since `offset` (lossy UTF-8; empty on error).
    pub fn log_since(&self, offset: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut f) = File::open(PACEMAKER_LOG) {
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = f.read_to_end(&mut text);
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Removes the agent symlinks, tears the cluster down and checks that no corosync or
    /// pacemaker process is left; releases the locks afterwards.
    pub fn shutdown(mut self) -> Result<(), String> {
        let res = self.teardown();
        if res.is_ok() {
            let left = cluster_processes();
            if !left.is_empty() {
                return Err(format!("cluster processes left after teardown: {left:?}"));
            }
        }
        res
    }

    fn teardown(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let agents = script_ok(&self.state, &["remove-agents"]);
        let down = script_ok(&self.state, &["down"]);
        agents.and(down).map(|_| ())
    }
}

impl Drop for Cluster {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("pacemaker teardown failed: {e}");
        }
    }
}

/// The attribute text of the first `<resource id="resource" …>` element in crm_mon XML.
fn resource_attrs<'a>(xml: &'a str, resource: &str) -> Option<&'a str> {
    let open = format!(r#"<resource id="{resource}" "#);
    let (_, rest) = xml.split_once(open.as_str())?;
    rest.split_once('>').map(|(attrs, _)| attrs)
}

/// Runs `bash scripts/pcmk.sh args… --state state`; Err with its output unless rc 0.
fn script_ok(state: &Path, args: &[&str]) -> Result<Output, String> {
    let script = script();
    let script = script.to_str().ok_or("script path is not UTF-8")?;
    let state = state.to_str().ok_or("state dir is not UTF-8")?;
    let mut all = vec![script];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--state", state]);
    let out = run_with_timeout("bash", &all, COMMAND_TIMEOUT);
    if out.status.success() {
        Ok(out)
    } else {
        Err(describe(&format!("pcmk.sh {}", args.join(" ")), &out))
    }
}
