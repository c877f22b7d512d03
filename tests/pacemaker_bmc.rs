//! fence_bmc fenced by a real Pacemaker against OpenIPMI `ipmi_sim` BMCs on loopback:
//! `pcs stonith create … fence_bmc` with fence_ipmilan-style parameters and
//! `stonith_admin --reboot`, the chassis program's log and `ipmitool -I lanplus` as witnesses.
//!
//! Scenarios (one cluster, in sequence):
//! 1. one BMC, `pcmk_host_list`: the simulated chassis goes off, then on;
//! 2. one device for two BMCs with `port_as_ip` and `pcmk_host_map`: `port_as_ip` replaces only
//!    the address, so both BMCs listen on the same UDP port, on 127.0.0.1 and 127.0.0.2
//!    (`BMC_ADDR` of bmcsim.sh); each node's reboot reaches only its own BMC;
//! 3. a BMC that accepts the power-off but ignores it: the fence fails, the chassis stays on.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fencekit::PowerState;

use crate::ipmisim::{free_port, need, sim_dir};
use crate::pacemaker_fake::{cluster_available, ok};
use crate::util::pacemaker::{self, Cluster};

/// Distinctive admin password (lan.conf: at most 20 characters, no spaces or quotes).
const PW: &str = "Pcmk-Adm1n-s3cret";

/// One ipmi_sim BMC at `addr:port` (bmcsim.sh), stopped on drop.
struct Sim {
    dir: tempfile::TempDir,
    addr: &'static str,
    port: u16,
}

impl Sim {
    fn start(addr: &'static str, port: u16, env: &[(&str, &str)]) -> Result<Sim, String> {
        let dir = tempfile::Builder::new()
            .prefix("bmcsim")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let out = Command::new(sim_dir().join("bmcsim.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .env("BMC_ADDR", addr)
            .env("BMC_ADMIN_PW", PW)
            .envs(env.iter().copied())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Sim { dir, addr, port })
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A BMC on 127.0.0.1 at a free port.
    fn any_port(env: &[(&str, &str)]) -> Sim {
        let mut last = String::new();
        for _ in 0..5 {
            match Sim::start("127.0.0.1", free_port(), env) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
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
        assert!(st.success(), "bmcsim.sh {args:?}");
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("events")).unwrap_or_default()
    }

    fn power_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("power"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// ipmitool's reading of the chassis power (password through the environment).
    fn ipmitool_power(&self) -> Option<PowerState> {
        let out = Command::new("ipmitool")
            .args([
                "-I", "lanplus", "-C", "3", "-N", "1", "-R", "2", "-H", self.addr,
            ])
            .args(["-p", &self.port.to_string(), "-U", "admin", "-E"])
            .args(["chassis", "power", "status"])
            .env("IPMI_PASSWORD", PW)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Chassis Power is on") {
            Some(PowerState::On)
        } else if text.contains("Chassis Power is off") {
            Some(PowerState::Off)
        } else {
            None
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = Command::new(sim_dir().join("bmcsim.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Two BMCs on one free port, at 127.0.0.1 and 127.0.0.2.
fn pair() -> (Sim, Sim) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let a = match Sim::start("127.0.0.1", port, &[]) {
            Ok(a) => a,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match Sim::start("127.0.0.2", port, &[]) {
            Ok(b) => return (a, b),
            Err(e) => last = e,
        }
    }
    panic!("cannot start two BMCs on one port: {last}");
}

/// `set power 0` then `set power 1` in the chassis log `ev`.
fn off_then_on(ev: &str) -> bool {
    match (ev.find("set power 0 -> ok"), ev.rfind("set power 1 -> ok")) {
        (Some(off), Some(on)) => off < on,
        _ => false,
    }
}

fn after(s: &str, mark: usize) -> &str {
    s.get(mark..).unwrap_or_default()
}

fn reboot(cluster: &Cluster, node: &str) -> Output {
    cluster.stonith_admin(&["--reboot", node, "--timeout", "60"])
}

#[test]
fn pacemaker_fences_through_fence_bmc() {
    if !cluster_available() {
        return;
    }
    if need("ipmi_sim").is_none() || need("ipmitool").is_none() {
        return;
    }
    let b1 = Sim::any_port(&[]);
    let (ba, bb) = pair();
    let broken = Sim::any_port(&[]);
    broken.script(&["fault", "poweroff=ignore"]);

    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();
    let log_start = cluster.log_offset();

    // pcs knows the agent's fence_ipmilan-style parameters.
    let out = cluster.pcs(&["stonith", "describe", "fence_bmc"]);
    ok("pcs stonith describe fence_bmc", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    for p in [
        "ip", "ipport", "username", "password", "lanplus", "cipher", "privlvl",
    ] {
        assert!(text.contains(p), "pcs stonith describe lacks {p}: {text}");
    }

    // 1. The README quick start: an existing fence_ipmilan line with fence_bmc in its place.
    let port1 = format!("ipport={}", b1.port);
    let pw = format!("password={PW}");
    ok(
        "pcs stonith create bmc1",
        &cluster.pcs(&[
            "stonith",
            "create",
            "bmc1",
            "fence_bmc",
            "ip=127.0.0.1",
            &port1,
            "username=admin",
            &pw,
            "lanplus=1",
            "pcmk_host_list=node-bmc1",
        ]),
    );
    cluster
        .wait_running("bmc1", Duration::from_secs(60))
        .unwrap();
    let mark = b1.events().len();
    let out = reboot(&cluster, "node-bmc1");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot node-bmc1", &out)
    );
    let ev = b1.events();
    assert!(off_then_on(after(&ev, mark)), "chassis log: {ev}");
    assert_eq!(b1.ipmitool_power(), Some(PowerState::On));
    assert_eq!(b1.power_file(), "1");
    // `pcs stonith fence --off`: the chassis stays off.
    ok(
        "pcs stonith fence node-bmc1 --off",
        &cluster.pcs(&["stonith", "fence", "node-bmc1", "--off"]),
    );
    assert_eq!(b1.ipmitool_power(), Some(PowerState::Off));
    cluster.delete_device("bmc1").unwrap();

    // 2. One device, two BMCs, port_as_ip + pcmk_host_map (the plug is the address; the port
    // is shared). `ip` is the address `monitor` checks (it runs without a plug).
    let port2 = format!("ipport={}", ba.port);
    ok(
        "pcs stonith create bmcmap",
        &cluster.pcs(&[
            "stonith",
            "create",
            "bmcmap",
            "fence_bmc",
            "ip=127.0.0.1",
            &port2,
            "username=admin",
            &pw,
            "lanplus=1",
            "port_as_ip=1",
            "pcmk_host_map=nodeA:127.0.0.1;nodeB:127.0.0.2",
        ]),
    );
    cluster
        .wait_running("bmcmap", Duration::from_secs(60))
        .unwrap();
    let (ma, mb) = (ba.events().len(), bb.events().len());
    let out = reboot(&cluster, "nodeB");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot nodeB", &out)
    );
    let (eva, evb) = (ba.events(), bb.events());
    assert!(off_then_on(after(&evb, mb)), "BMC B: {evb}");
    assert!(!after(&eva, ma).contains("set power"), "BMC A: {eva}");
    assert_eq!(bb.ipmitool_power(), Some(PowerState::On));
    let (ma, mb) = (ba.events().len(), bb.events().len());
    let out = reboot(&cluster, "nodeA");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot nodeA", &out)
    );
    let (eva, evb) = (ba.events(), bb.events());
    assert!(off_then_on(after(&eva, ma)), "BMC A: {eva}");
    assert!(!after(&evb, mb).contains("set power"), "BMC B: {evb}");
    assert_eq!(ba.ipmitool_power(), Some(PowerState::On));
    cluster.delete_device("bmcmap").unwrap();

    // 3. Power-off accepted but ignored: the fence fails, nothing claims the node is down.
    let port3 = format!("ipport={}", broken.port);
    ok(
        "pcs stonith create bmcbroken",
        &cluster.pcs(&[
            "stonith",
            "create",
            "bmcbroken",
            "fence_bmc",
            "ip=127.0.0.1",
            &port3,
            "username=admin",
            &pw,
            "lanplus=1",
            "power_timeout=2",
            "pcmk_host_list=node-bmc3",
        ]),
    );
    cluster
        .wait_running("bmcbroken", Duration::from_secs(60))
        .unwrap();
    let out = reboot(&cluster, "node-bmc3");
    assert_ne!(
        out.status.code(),
        Some(0),
        "an ignored power-off was reported as fenced: {}",
        pacemaker::describe("stonith_admin --reboot node-bmc3", &out)
    );
    assert!(broken.events().contains("set power 0 -> ignored"));
    assert_eq!(broken.ipmitool_power(), Some(PowerState::On));
    let log = cluster.log_since(log_start);
    assert!(
        log.contains("Timed out waiting to power OFF"),
        "fenced logged the agent's reason"
    );
    // The password never reached Pacemaker's log through the agent (pacemaker-based logs
    // the CIB change with the device's parameters, the password included; that is Pacemaker's
    // own doing, so only the fencer's lines, which carry the agent's stderr, are checked).
    let fenced: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pacemaker-fenced"))
        .collect();
    assert!(!fenced.is_empty());
    assert!(
        fenced.iter().all(|l| !l.contains(PW)),
        "password in the fencer's log lines"
    );
    cluster.delete_device("bmcbroken").unwrap();
    cluster.shutdown().unwrap();
    drop((b1, ba, bb, broken));
}
