//! Rust guard for the fake ESXi hosts of `tests/support/sim/esxi/esxi-host.sh`.
//!
//! `EsxiHost::builder().start()` starts one host (private sshd on 127.0.0.1 with its own host
//! keys, keyboard-interactive and public-key logins for the test user, simulated `vim-cmd`);
//! dropping the guard stops exactly the processes that host started (the harness checks
//! recorded PIDs against the host's sshd_config path). Hosts of one test process share a state
//! root `/tmp/fk-esxi-<pid>` (removed when the last host is dropped); several hosts may run
//! at once. Ports come from 2200–2299, skipping busy ones.

// Test-harness code: failing loudly is the point here.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Test user created by the harness.
pub const USER: &str = "fencetest";
/// Its password (keyboard-interactive / password logins).
pub const PASSWORD: &str = "fencetest-pw";

const IP: &str = "127.0.0.1";
static NEXT: AtomicU32 = AtomicU32::new(0);
static LIVE: Mutex<usize> = Mutex::new(0);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sim/esxi/esxi-host.sh")
}

fn root() -> PathBuf {
    PathBuf::from(format!("/tmp/fk-esxi-{}", std::process::id()))
}

/// Which login methods the fake host's sshd offers (public key always works).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `publickey,keyboard-interactive` via PAM: like real ESXi.
    Kbdint,
    /// `publickey,password` (sshd checks the password itself).
    Password,
    /// All three.
    Both,
    /// Public key only.
    Pubkey,
}

impl Auth {
    fn word(self) -> &'static str {
        match self {
            Auth::Kbdint => "kbdint",
            Auth::Password => "password",
            Auth::Both => "both",
            Auth::Pubkey => "pubkey",
        }
    }
}

/// One VM of a custom inventory.
#[derive(Debug, Clone)]
pub struct SimVm {
    /// vmid.
    pub vmid: u32,
    /// Display name.
    pub name: String,
    /// `on`, `off` or `suspended`.
    pub power: &'static str,
    /// Annotation (may contain newlines).
    pub annotation: String,
    /// `running`, `notRunning` or `notInstalled`.
    pub tools: &'static str,
    /// Invalid VM (`Skipping invalid VM`).
    pub invalid: bool,
}

impl SimVm {
    /// A VM with defaults (tools running, no annotation).
    pub fn new(vmid: u32, name: &str, power: &'static str) -> Self {
        SimVm {
            vmid,
            name: name.to_owned(),
            power,
            annotation: String::new(),
            tools: "running",
            invalid: false,
        }
    }
}

/// Settings of a host to start.
#[derive(Debug, Clone)]
pub struct Builder {
    auth: Auth,
    layout: &'static str,
    vms: Option<Vec<SimVm>>,
    latency: f64,
    fault_rc: i32,
    shutdown_delay: f64,
    extra_pubkey: Option<PathBuf>,
}

impl Builder {
    /// Login methods offered (default: keyboard-interactive, like ESXi).
    pub fn auth(mut self, a: Auth) -> Self {
        self.auth = a;
        self
    }
    /// Output layout: `"8"` (default, also 6.7/7), `"6"` or `"5"`.
    pub fn layout(mut self, l: &'static str) -> Self {
        self.layout = l;
        self
    }
    /// Custom inventory instead of the default traps inventory.
    pub fn vms(mut self, vms: &[SimVm]) -> Self {
        self.vms = Some(vms.to_vec());
        self
    }
    /// Seconds added to every simulator call.
    pub fn latency(mut self, s: f64) -> Self {
        self.latency = s;
        self
    }
    /// Exit status of vim-cmd faults (default 1).
    pub fn fault_rc(mut self, rc: i32) -> Self {
        self.fault_rc = rc;
        self
    }
    /// Delay after which power.shutdown takes effect.
    pub fn shutdown_delay(mut self, s: f64) -> Self {
        self.shutdown_delay = s;
        self
    }
    /// Also authorize this public key file.
    pub fn extra_pubkey(mut self, p: &Path) -> Self {
        self.extra_pubkey = Some(p.to_owned());
        self
    }

    /// Starts the host. `None` = the peer is unavailable here and the test should return
    /// (it already printed `skipped: ...`, or panicked when simulators are required).
    pub fn start(self) -> Option<EsxiHost> {
        if let Some(why) = unavailable() {
            super::skip_or_fail(&why);
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("e{n}");
        {
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            *live += 1;
        }
        let mut host = EsxiHost {
            name,
            root: root(),
            port: 0,
            info: Vec::new(),
            builder: self,
        };
        let base = 2200 + (std::process::id() + n * 7) % 100;
        for attempt in 0..100u32 {
            let port = 2200 + (base - 2200 + attempt) % 100;
            match host.run_start(port as u16) {
                Ok(()) => return Some(host),
                Err(3) => continue,
                Err(rc) => panic!("esxi-host.sh start failed (rc {rc})"),
            }
        }
        panic!("no free port in 2200-2299 for a fake ESXi host");
    }
}

fn unavailable() -> Option<String> {
    for p in ["/usr/sbin/sshd", "/usr/bin/python3", "/usr/bin/ssh-keygen"] {
        if !Path::new(p).exists() {
            return Some(format!("{p} not installed"));
        }
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("the fake ESXi host needs root (sshd password checks)".to_owned());
    }
    None
}

/// A running fake ESXi host. Dropping it stops and removes it.
#[derive(Debug)]
pub struct EsxiHost {
    name: String,
    root: PathBuf,
    port: u16,
    info: Vec<(String, String)>,
    builder: Builder,
}

impl EsxiHost {
    /// A builder with the defaults (kbdint, ESXi 8 layout, default inventory).
    pub fn builder() -> Builder {
        Builder {
            auth: Auth::Kbdint,
            layout: "8",
            vms: None,
            latency: 0.0,
            fault_rc: 1,
            shutdown_delay: 3.0,
            extra_pubkey: None,
        }
    }

    /// Starts a default host, or one with this inventory when `vms` is not empty.
    pub fn start(vms: &[SimVm]) -> Option<EsxiHost> {
        let b = Self::builder();
        if vms.is_empty() {
            b.start()
        } else {
            b.vms(vms).start()
        }
    }

    fn harness(&self, args: &[&str]) -> std::process::Output {
        Command::new(script())
            .arg(&self.root)
            .args(args)
            .output()
            .expect("run esxi-host.sh")
    }

    fn run_start(&mut self, port: u16) -> Result<(), i32> {
        let b = &self.builder;
        let mut cmd = Command::new(script());
        cmd.arg(&self.root)
            .args(["start", &self.name, IP, &port.to_string()])
            .env("ESXI_AUTH", b.auth.word())
            .env("ESXI_LAYOUT", b.layout)
            .env("ESXI_LATENCY", b.latency.to_string())
            .env("ESXI_FAULT_RC", b.fault_rc.to_string())
            .env("ESXI_SHUTDOWN_DELAY", b.shutdown_delay.to_string())
            .env_remove("ESXI_INVENTORY")
            .env_remove("ESXI_EXTRA_PUBKEY");
        if let Some(p) = &b.extra_pubkey {
            cmd.env("ESXI_EXTRA_PUBKEY", p);
        }
        let inv_path = self.root.join(format!("{}-inventory.json", self.name));
        if let Some(vms) = &b.vms {
            std::fs::create_dir_all(&self.root).expect("state root");
            let list: Vec<serde_json::Value> = vms
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "vmid": v.vmid, "name": v.name, "power": v.power,
                        "annotation": v.annotation, "tools": v.tools, "invalid": v.invalid,
                    })
                })
                .collect();
            std::fs::write(&inv_path, serde_json::Value::Array(list).to_string())
                .expect("write inventory");
            cmd.env("ESXI_INVENTORY", &inv_path);
        }
        let out = cmd.output().expect("run esxi-host.sh");
        let _ = std::fs::remove_file(&inv_path);
        match out.status.code() {
            Some(0) => {}
            Some(3) => return Err(3),
            rc => {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
                return Err(rc.unwrap_or(-1));
            }
        }
        self.port = port;
        self.info = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(())
    }

    fn get(&self, key: &str) -> String {
        self.info
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The host's name (also its directory name).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its address.
    pub fn ip(&self) -> &'static str {
        IP
    }
    /// Its TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Login name.
    pub fn user(&self) -> &'static str {
        USER
    }
    /// Password of the login.
    pub fn password(&self) -> &'static str {
        PASSWORD
    }
    /// Private key authorized on every host.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("client/id_ed25519")
    }
    /// `ssh` wrapper with strict host-key checking and the client key (for agents' `--ssh-path`).
    pub fn ssh_wrapper(&self) -> PathBuf {
        self.root.join("client/ssh")
    }
    /// The host's directory (state.json, calls.log, faults/, sshd.log).
    pub fn hostdir(&self) -> PathBuf {
        PathBuf::from(self.get("hostdir"))
    }
    /// SHA256 fingerprint of the ed25519 host key (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        self.get("fingerprint")
    }
    /// SHA256 fingerprint of the RSA host key.
    pub fn fingerprint_rsa(&self) -> String {
        self.get("fingerprint_rsa")
    }
    /// known_hosts lines (ed25519 and RSA) for `[127.0.0.1]:port`.
    pub fn known_hosts_lines(&self) -> Vec<String> {
        self.info
            .iter()
            .filter(|(k, _)| k == "known_hosts")
            .map(|(_, v)| v.clone())
            .collect()
    }
    /// The ed25519 known_hosts line.
    pub fn known_hosts_line(&self) -> String {
        self.known_hosts_lines()
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Arms a fault: `kind` is hang, exit, garble, drop, noop, slow or login_delay; `args` are
    /// `key=value` (value, match, times, mode, msg, ops) or a bare value.
    pub fn set_fault(&self, kind: &str, args: &[&str]) {
        let mut v = vec!["fault", self.name.as_str(), kind];
        v.extend_from_slice(args);
        let out = self.harness(&v);
        assert!(
            out.status.success(),
            "set_fault: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// Disarms all faults.
    pub fn clear_faults(&self) {
        let _ = self.harness(&["clear", &self.name]);
    }
    /// SIGSTOPs the sshd listener (new connections hang in the banner exchange).
    pub fn freeze(&self) {
        let out = self.harness(&["freeze", &self.name]);
        assert!(
            out.status.success(),
            "freeze: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// SIGCONTs the sshd listener.
    pub fn thaw(&self) {
        let _ = self.harness(&["thaw", &self.name]);
    }

    /// The VM state dump (no ssh).
    pub fn state(&self) -> serde_json::Value {
        let out = self.harness(&["state", &self.name]);
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }

    /// Power state (`on`/`off`/`suspended`) of the VM with this name, pending changes
    /// applied; `None` if no such VM.
    pub fn vm_state(&self, name: &str) -> Option<String> {
        let st = self.state();
        st.get("vms")?
            .as_array()?
            .iter()
            .find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|v| v.get("power")?.as_str().map(str::to_owned))
    }

    /// Every simulator call so far (calls.log JSON lines).
    pub fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.hostdir().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Restarts the host on the same port (state kept); with `new_keys`, it gets new host
    /// keys first (a "reinstalled" host).
    pub fn restart(&mut self, new_keys: bool) {
        let _ = self.harness(&["stop", &self.name]);
        if new_keys {
            let _ = self.harness(&["rekey", &self.name]);
        }
        let port = self.port;
        // Keep the state: do not pass the inventory again.
        self.builder.vms = None;
        self.run_start(port).expect("restart on the same port");
    }
}

impl Drop for EsxiHost {
    fn drop(&mut self) {
        let _ = self.harness(&["destroy", &self.name]);
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        *live = live.saturating_sub(1);
        if *live == 0 && self.root.starts_with("/tmp") {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
