//! Test peer guard: one OpenIPMI `ipmi_sim` BMC on 127.0.0.1 (tests/support/sim_ipmi/bmcsim.sh),
//! killed on drop; `ipmitool` as the second opinion; a lossy UDP relay (tests/support/sim_ipmi/relay.py).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing
)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fencekit::transport::ipmi::{IpmiConfig, Privilege, Version};
use fencekit::{PowerState, Secret};

/// The scripts directory.
pub fn sim_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sim_ipmi")
}

/// True when a missing simulator must fail the test (the one check of `tests/support`; the
/// name stays for tests that call it).
#[allow(unused_imports, reason = "a stable path for test modules")]
pub use super::simulators_required as required;

/// `Some(())` if `prog` is on PATH; otherwise skips (or fails when required).
pub fn need(prog: &str) -> Option<()> {
    super::have_tool(prog).then_some(())
}

/// A free UDP port on 127.0.0.1 (bind to 0, read it, release it).
pub fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// One running simulated BMC.
pub struct Bmc {
    /// Instance directory (deleted on drop).
    pub dir: tempfile::TempDir,
    /// UDP port.
    pub port: u16,
    /// Admin password in lan.conf.
    pub admin_pw: String,
}

impl Bmc {
    /// Starts a BMC with extra environment (`BMC_KG`, `BMC_V15`, ...); `None` = skipped.
    pub fn start(env: &[(&str, &str)]) -> Option<Bmc> {
        need("ipmi_sim")?;
        need("ipmitool")?;
        let dir = tempfile::Builder::new().prefix("bmcsim").tempdir().unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let out = Command::new(sim_dir().join("bmcsim.sh"))
                .arg("start")
                .arg(dir.path())
                .arg(port.to_string())
                .envs(env.iter().copied())
                .output()
                .unwrap();
            if out.status.success() {
                let admin_pw = env
                    .iter()
                    .find(|(k, _)| *k == "BMC_ADMIN_PW")
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_else(|| "pass".into());
                return Some(Bmc {
                    dir,
                    port,
                    admin_pw,
                });
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("bmcsim start failed: {last}");
    }

    fn script(&self, args: &[&str]) {
        let st = Command::new(sim_dir().join("bmcsim.sh"))
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(st.success(), "bmcsim.sh {args:?} failed");
    }

    /// Power state as the chassis program holds it ("0"/"1").
    pub fn power_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("power"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Changes the power state behind the BMC's back.
    pub fn set_power(&self, on: bool) {
        self.script(&["power", if on { "1" } else { "0" }]);
    }

    /// Adds fault switches (`poweron=error`, `delay=3`, `clear`...).
    pub fn fault(&self, kv: &[&str]) {
        let mut a = vec!["fault"];
        a.extend_from_slice(kv);
        self.script(&a);
    }

    /// SIGSTOP the BMC.
    pub fn hang(&self) {
        self.script(&["hang"]);
    }

    /// SIGCONT the BMC.
    pub fn resume(&self) {
        self.script(&["resume"]);
    }

    /// The chassis program's event log.
    pub fn events(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("events")).unwrap_or_default()
    }

    /// A library config for this BMC: admin, suite 3, short timeouts.
    pub fn cfg(&self) -> IpmiConfig {
        let mut c = IpmiConfig::new("127.0.0.1", "admin", Secret::new(self.admin_pw.clone()));
        c.port = self.port;
        c.cipher = Some(3);
        c.privilege = Privilege::Administrator;
        c.version = Version::V20;
        c.timeout = Duration::from_secs(5);
        c.command_timeout = Duration::from_secs(5);
        c
    }

    /// Runs ipmitool (password through the environment, never argv) and returns
    /// (success, stdout + stderr).
    pub fn ipmitool(&self, user: &str, pw: &str, args: &[&str]) -> (bool, String) {
        ipmitool_at(self.port, user, pw, &["-C", "3"], args)
    }

    /// ipmitool's reading of the power state (admin), the second opinion.
    pub fn ipmitool_power(&self) -> Option<PowerState> {
        let (_, out) = self.ipmitool("admin", &self.admin_pw, &["chassis", "power", "status"]);
        if out.contains("Chassis Power is on") {
            Some(PowerState::On)
        } else if out.contains("Chassis Power is off") {
            Some(PowerState::Off)
        } else {
            None
        }
    }
}

/// ipmitool -I lanplus against 127.0.0.1:port with extra interface flags.
pub fn ipmitool_at(
    port: u16,
    user: &str,
    pw: &str,
    flags: &[&str],
    args: &[&str],
) -> (bool, String) {
    let port = port.to_string();
    let out = Command::new("ipmitool")
        .args([
            "-I",
            "lanplus",
            "-N",
            "1",
            "-R",
            "2",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
        ])
        .args(["-U", user, "-E"])
        .args(flags)
        .args(args)
        .env("IPMI_PASSWORD", pw)
        .env_remove("IPMITOOL_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

impl Drop for Bmc {
    fn drop(&mut self) {
        let _ = Command::new(sim_dir().join("bmcsim.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// A lossy UDP relay process (tests/support/sim_ipmi/relay.py), killed on drop.
pub struct Relay {
    child: Child,
    /// Port clients send to.
    pub port: u16,
    /// Log file.
    pub log: PathBuf,
}

impl Relay {
    /// Starts a relay to `target` with relay.py options (`--drop 0.3`, `--dup-s2c 5`, ...).
    pub fn start(target: u16, dir: &Path, opts: &[&str]) -> Option<Relay> {
        need("python3")?;
        let port = free_port();
        let log = dir.join(format!("relay-{port}.log"));
        let mut child = Command::new("python3")
            .arg(sim_dir().join("relay.py"))
            .args([
                "--listen",
                &port.to_string(),
                "--target",
                &target.to_string(),
            ])
            .args(["--log", log.to_str().unwrap(), "--lifetime", "120"])
            .args(opts)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready when the log file exists (written after bind).
        for _ in 0..100 {
            if log.exists() {
                return Some(Relay { child, port, log });
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("relay exited: {st}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!("relay did not start");
    }

    /// The relay's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
