//! Rust guard for the simulated KVM hosts of `tests/support/sim_kvm/kvmsim.sh`.
//!
//! Each fake host is a private OpenSSH `sshd` on 127.0.0.1 (own host keys, key and password
//! login for the test user) whose sessions run the REAL `virsh` against a private libvirtd
//! with the test driver (state kept alive by a holder client). [`KvmSim`] owns one state
//! root, starts hosts on free ports (in parallel), offers the backdoor (`virsh` without ssh),
//! migration, fault injection and freeze/thaw, and stops everything it started on drop
//! (pid files only, never by process name).
//!
//! Needs root and openssh-server, libvirt-daemon, libvirt-clients. When missing, [`KvmSim::new`]
//! prints `skipped: <why>` and returns `None`, unless `CI=true` or
//! `FENCE_REQUIRE_SIMULATORS=1`, in which case it panics (the test fails).

#![allow(dead_code)]
// Test support code: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Port range reserved for the KVM simulators.
const PORT_LO: u16 = 2221;
const PORT_HI: u16 = 2299;

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);
static NEXT_ROOT: AtomicUsize = AtomicUsize::new(0);

fn next_port() -> u16 {
    let span = PORT_HI - PORT_LO + 1;
    let seed = (std::process::id() % u32::from(span)) as u16;
    let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
    PORT_LO + (seed + n) % span
}

/// A daemon of a fake host that can be frozen (SIGSTOP) and thawed.
#[derive(Debug, Clone, Copy)]
pub enum Daemon {
    /// The sshd listener: new connections hang in the banner exchange.
    Sshd,
    /// The host's libvirtd: virsh calls hang.
    Libvirtd,
}

impl Daemon {
    fn word(self) -> &'static str {
        match self {
            Daemon::Sshd => "sshd",
            Daemon::Libvirtd => "libvirtd",
        }
    }
}

/// One running fake KVM host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmHost {
    /// Host CF name (also the directory name).
    pub name: String,
    /// Loopback address.
    pub ip: String,
    /// SSH port.
    pub port: u16,
}

/// A guest to define when a host starts: name and whether it runs.
pub type GuestSpec<'a> = (&'a str, bool);

/// A set of fake KVM hosts under one private state root.
pub struct KvmSim {
    root: PathBuf,
    script: PathBuf,
    hosts: Vec<KvmHost>,
}

/// Why the simulators cannot run here, if they cannot.
fn missing_prerequisite() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some("simulated KVM hosts need root (password login reads /etc/shadow)".into());
    }
    for bin in [
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/sbin/libvirtd",
        "/usr/bin/virsh",
        "/usr/bin/setpriv",
        "/usr/bin/flock",
        "/usr/bin/ss",
    ] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} not installed"));
        }
    }
    None
}

impl KvmSim {
    /// A new empty simulator root for one test (`suite` is a short tag). `None` = skipped.
    pub fn new(suite: &str) -> Option<KvmSim> {
        if let Some(why) = missing_prerequisite() {
            super::skip_or_fail(&format!("simulated KVM hosts: {why}"));
            return None;
        }
        let n = NEXT_ROOT.fetch_add(1, Ordering::SeqCst);
        let tag: String = suite
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let root = PathBuf::from(format!("/tmp/fkv-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sim_kvm/kvmsim.sh");
        let sim = KvmSim {
            root,
            script,
            hosts: Vec::new(),
        };
        let out = sim.run(&["setup"], &[]);
        assert!(out.status.success(), "kvmsim setup failed: {}", text(&out));
        Some(sim)
    }

    fn cmd(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = Command::new("/bin/bash");
        c.arg(&self.script).arg(sub).arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, sub: &[&str], args: &[&str]) -> Output {
        let (first, rest) = sub.split_first().expect("subcommand");
        let mut all: Vec<&str> = rest.to_vec();
        all.extend_from_slice(args);
        self.cmd(first, &all)
            .output()
            .unwrap_or_else(|e| panic!("cannot run kvmsim.sh: {e}"))
    }

    fn run_ok(&self, sub: &str, args: &[&str]) -> Output {
        let out = self.run(&[sub], args);
        assert!(
            out.status.success(),
            "kvmsim {sub} {args:?} failed: {}",
            text(&out)
        );
        out
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts one host with its guests on a free port (auth: key + password).
    pub fn start_host(&mut self, name: &str, guests: &[GuestSpec<'_>]) -> KvmHost {
        self.start_host_auth(name, "password", guests)
    }

    /// Starts one host with an auth mode (`password`, `pubkey`, `both`, `kbdint`).
    pub fn start_host_auth(&mut self, name: &str, auth: &str, guests: &[GuestSpec<'_>]) -> KvmHost {
        let h = start_one(&self.script, &self.root, name, auth, guests);
        self.hosts.retain(|x| x.name != h.name);
        self.hosts.push(h.clone());
        h
    }

    /// Starts several hosts in parallel (`(name, guests)`), returns them in order.
    pub fn start_hosts(&mut self, specs: &[(&str, Vec<GuestSpec<'_>>)]) -> Vec<KvmHost> {
        let started: Vec<KvmHost> = std::thread::scope(|s| {
            let handles: Vec<_> = specs
                .iter()
                .map(|(name, guests)| {
                    let script = &self.script;
                    let root = &self.root;
                    s.spawn(move || start_one(script, root, name, "password", guests))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("host start thread panicked"))
                .collect()
        });
        for h in &started {
            self.hosts.retain(|x| x.name != h.name);
            self.hosts.push(h.clone());
        }
        started
    }

    /// A started host by name.
    pub fn host(&self, name: &str) -> &KvmHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// All started hosts, in start order.
    pub fn hosts(&self) -> &[KvmHost] {
        &self.hosts
    }

    /// Stops one host (kills its recorded PIDs and their descendants).
    pub fn stop_host(&mut self, name: &str) {
        self.run_ok("stop", &[name]);
        self.hosts.retain(|h| h.name != name);
    }

    /// Directory of a host.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.root.join("h").join(name)
    }

    /// PIDs recorded for a host (sshd, libvirtd, holder, delayed actions).
    pub fn pids(&self, name: &str) -> Vec<u32> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.host_dir(name).join("pids")) {
            for e in rd.flatten() {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    if let Ok(p) = s.trim().parse() {
                        v.push(p);
                    }
                }
            }
        }
        v
    }

    /// Backdoor: real virsh against the host's libvirtd, as the test user, no ssh/faults.
    pub fn virsh(&self, host: &str, args: &[&str]) -> Output {
        let mut all = vec![host];
        all.extend_from_slice(args);
        self.run(&["virsh"], &all)
    }

    /// Backdoor `domstate` (first line; `None` when the host does not know the guest).
    pub fn domstate(&self, host: &str, guest: &str) -> Option<String> {
        let out = self.virsh(host, &["domstate", "--", guest]);
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    }

    /// Defines a guest on a host (and starts it when `on`).
    pub fn define(&self, host: &str, guest: &str, on: bool) {
        self.run_ok("define", &[host, guest, if on { "on" } else { "off" }]);
    }

    /// Migrates a guest: dumpxml on `src`, destroy there (and undefine unless `keep`),
    /// define on `dst` (and start it if it was running).
    pub fn migrate(&self, src: &str, dst: &str, guest: &str, keep: bool) {
        let mut a = vec![src, dst, guest];
        if keep {
            a.push("keep");
        }
        self.run_ok("migrate", &a);
    }

    /// `(host, state)` of a guest on every running host; state `absent` when undefined.
    pub fn where_is(&self, guest: &str) -> Vec<(String, String)> {
        let out = self.run_ok("where", &[guest]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(h, s)| (h.to_owned(), s.to_owned()))
            .collect()
    }

    /// A running guest crashes on `host` with on_crash=preserve (qemu alive): through ssh,
    /// virsh reports it `crashed` until it is destroyed (see tests/support/sim_kvm/README.md).
    pub fn crash(&self, host: &str, guest: &str) {
        self.run_ok("crash", &[host, guest]);
    }

    /// Arms a fault on a host: `kind` (hang, exit, garble, drop, noop, slow, login_delay,
    /// sudo_denied), optional `value`, extra `key=value` settings (match, times, mode, msg, ops).
    pub fn fault(&self, host: &str, kind: &str, value: Option<&str>, kv: &[(&str, &str)]) {
        let mut a: Vec<String> = vec![host.to_owned(), kind.to_owned()];
        if let Some(v) = value {
            a.push(v.to_owned());
        }
        for (k, v) in kv {
            a.push(format!("{k}={v}"));
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        self.run_ok("fault", &refs);
    }

    /// Removes every armed fault of a host.
    pub fn clear_faults(&self, host: &str) {
        self.run_ok("clear", &[host]);
    }

    /// SIGSTOPs a host daemon.
    pub fn freeze(&self, host: &str, d: Daemon) {
        self.run_ok("freeze", &[host, d.word()]);
    }

    /// SIGCONTs a host daemon.
    pub fn thaw(&self, host: &str, d: Daemon) {
        self.run_ok("thaw", &[host, d.word()]);
    }

    /// Stops only the host's sshd (connections refused; libvirt state kept).
    pub fn sshd_down(&self, host: &str) {
        self.run_ok("sshd-down", &[host]);
    }

    /// Starts the host's sshd again (same port and keys).
    pub fn sshd_up(&self, host: &str) {
        self.run_ok("sshd-up", &[host]);
    }

    /// The test user.
    pub fn user(&self) -> String {
        std::env::var("KVMSIM_USER").unwrap_or_else(|_| "fencetest".into())
    }

    /// The test user's password.
    pub fn password(&self) -> String {
        std::env::var("KVMSIM_PASSWORD").unwrap_or_else(|_| "fencetest-pw".into())
    }

    /// Client private key (ed25519, authorized on every host).
    pub fn client_key(&self) -> PathBuf {
        self.root.join("client/id_ed25519")
    }

    /// Private known_hosts with every started host's keys (`[127.0.0.1]:PORT`).
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("client/known_hosts")
    }

    /// `ssh` wrapper (strict host keys against the private known_hosts, client key).
    pub fn ssh_wrapper(&self) -> PathBuf {
        self.root.join("client/ssh")
    }

    /// Authorizes an extra public key on hosts started afterwards.
    pub fn authorize_key(&self, pubkey_line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("client/extra_authorized_keys"))
            .expect("extra_authorized_keys");
        writeln!(f, "{}", pubkey_line.trim()).expect("write key");
    }

    /// The host's per-call log of the virsh/sudo wrappers.
    pub fn calls(&self, host: &str) -> String {
        std::fs::read_to_string(self.host_dir(host).join("calls.log")).unwrap_or_default()
    }

    /// The host's libvirt lifecycle event log (from the holder client).
    pub fn events(&self, host: &str) -> String {
        std::fs::read_to_string(self.host_dir(host).join("events.log")).unwrap_or_default()
    }

    /// `ssh` command (OpenSSH client, key login) to a host, not yet run.
    pub fn ssh_command(&self, host: &str, remote: &str) -> Command {
        let h = self.host(host);
        let mut c = Command::new("/usr/bin/ssh");
        c.arg("-F")
            .arg(self.root.join("client/ssh_config"))
            .arg("-o")
            .arg("BatchMode=yes")
            .arg("-p")
            .arg(h.port.to_string())
            .arg(format!("{}@{}", self.user(), h.ip))
            .arg(remote)
            .stdin(Stdio::null());
        c
    }

    /// Runs a remote command with key login; kills the client after `limit`.
    pub fn ssh(&self, host: &str, remote: &str, limit: Duration) -> SshResult {
        run_limited(self.ssh_command(host, remote), limit)
    }

    /// Runs a remote command with password login (SSH_ASKPASS), kills it after `limit`.
    pub fn ssh_password(
        &self,
        host: &str,
        remote: &str,
        password: &str,
        limit: Duration,
    ) -> SshResult {
        let h = self.host(host);
        let askpass = self.root.join(format!(
            "client/askpass-{}-{}",
            std::process::id(),
            NEXT_ROOT.fetch_add(1, Ordering::SeqCst)
        ));
        {
            use std::os::unix::fs::PermissionsExt;
            let pwfile = askpass.with_extension("pw");
            std::fs::write(&pwfile, password).expect("pw file");
            std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
            std::fs::write(
                &askpass,
                format!("#!/bin/sh\nexec cat '{}'\n", pwfile.display()),
            )
            .expect("askpass");
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
        }
        let mut c = Command::new("/usr/bin/ssh");
        c.arg("-F")
            .arg(self.root.join("client/ssh_config"))
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .args([
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
            ])
            .arg("-p")
            .arg(h.port.to_string())
            .arg(format!("{}@{}", self.user(), h.ip))
            .arg(remote)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null());
        let r = run_limited(c, limit);
        let _ = std::fs::remove_file(askpass.with_extension("pw"));
        let _ = std::fs::remove_file(&askpass);
        r
    }

    /// A kvmguests.conf for `(guest, host)` pairs (guest-cfname = `cf` + guest, cluster
    /// `gcluster1`, IPs 127.0.1.N, user `root`, password `guest-secret-N`).
    pub fn kvmguests_conf(pairs: &[(&str, &str)]) -> String {
        let mut s = String::from("# generated by tests/support/kvmsim.rs\n");
        for (i, (g, h)) in pairs.iter().enumerate() {
            s.push_str(&format!(
                "{g} {h} gcluster1 cf{g} 127.0.1.{} root guest-secret-{}\n",
                i + 1,
                i + 1
            ));
        }
        s
    }

    /// The agent's `hosts` option value for every started host (`name=ip:port,...`).
    pub fn hosts_option(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("{}={}:{}", h.name, h.ip, h.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for KvmSim {
    fn drop(&mut self) {
        let _ = self.cmd("stopall", &[]).output();
        if std::env::var_os("KVMSIM_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn start_one(
    script: &Path,
    root: &Path,
    name: &str,
    auth: &str,
    guests: &[GuestSpec<'_>],
) -> KvmHost {
    let mut last = String::new();
    for _ in 0..40 {
        let port = next_port();
        let mut c = Command::new("/bin/bash");
        c.arg(script)
            .arg("start")
            .arg(root)
            .arg(name)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg("--auth")
            .arg(auth)
            .stdin(Stdio::null());
        for (g, on) in guests {
            c.arg(format!("{}:{g}", if *on { "on" } else { "off" }));
        }
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("cannot run kvmsim.sh: {e}"));
        match out.status.code() {
            Some(0) => {
                return KvmHost {
                    name: name.to_owned(),
                    ip: "127.0.0.1".to_owned(),
                    port,
                }
            }
            Some(3) => {
                last = text(&out);
                continue;
            }
            _ => panic!("kvmsim start {name} failed: {}", text(&out)),
        }
    }
    panic!("kvmsim start {name}: no free port: {last}");
}

/// stdout + stderr of a harness call, for assertion messages.
fn text(o: &Output) -> String {
    format!(
        "rc={:?} stdout={} stderr={}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Outcome of a client command run with a deadline.
#[derive(Debug)]
pub struct SshResult {
    /// Exit code (`None` when killed at the deadline or by a signal).
    pub code: Option<i32>,
    /// True when the deadline killed it.
    pub timed_out: bool,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl SshResult {
    /// The remote command's exit status as a virsh parser sees it: OpenSSH's 255 (connection
    /// failure) and a deadline kill both become "no exit status".
    pub fn exit(&self) -> Option<i32> {
        match self.code {
            Some(255) | None => None,
            c => c,
        }
    }

    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs a command, killing it after `limit` (stdout/stderr collected by threads).
pub fn run_limited(mut c: Command, limit: Duration) -> SshResult {
    use std::io::Read;
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let to = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let te = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() >= limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    SshResult {
        code: if timed_out { None } else { status.code() },
        timed_out,
        stdout: to.join().unwrap_or_default(),
        stderr: te.join().unwrap_or_default(),
    }
}
