//! vm-evacuate against real peers: simulated ESXi hosts sharing datastores with leased locks,
//! one simulated BMC each (`tests/sim/evac.rs`, `tests/sim/esxi/evacsim.py`). Every scenario
//! asserts the simulator's call and event logs and the CLI's exit code and JSON (the contract
//! of issue 10: exit 0 done, 1 error or refusal for safety, 2 usage or inventory error).
//!
//! Run: `FENCE_REQUIRE_SIMULATORS=1 cargo test --locked --test integration evacuate --
//! --test-threads=2` (as root: the fake hosts' sshd needs it).

use std::time::Duration;

use serde_json::Value;

use crate::sim::evac::{HostSpec, Inventory, Sim, VmSpec};

fn ev_is(e: &Value, ev: &str, host: &str) -> bool {
    e["ev"] == ev && e["host"] == host
}

/// The simulator itself: locks follow power, a live owner's lock refuses a power-on
/// elsewhere with "Failed to lock the file", the BMC's power-off stops the host's sshd and
/// expires its leases (then the power-on succeeds elsewhere), the "moved or copied"
/// question, get.summary memory, and the BMC's power-on boots the host again.
#[test]
fn evacuate_simulator_locks_and_bmc() {
    let Some(sim) = Sim::start(
        &[
            HostSpec::new("esx1", &["shared1", "local1"]),
            HostSpec::new("esx2", &["shared1"]).ask_moved(),
        ],
        &[
            VmSpec::new("web1", "esx1", "shared1").memory(1536),
            VmSpec::new("idle1", "esx1", "shared1").power("off"),
            VmSpec::new("loc1", "esx1", "local1"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    assert_eq!(sim.lock_owner("shared1", "web1").as_deref(), Some("esx1"));
    assert_eq!(sim.lock_owner("shared1", "idle1"), None);

    // getallvms on esx1 over SSH lists the three VMs; esx2 has none.
    let out = sim.ssh_vim("esx1", "vmsvc/getallvms");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("[shared1] web1/web1.vmx") && text.contains("[local1] loc1/loc1.vmx"),
        "{text}"
    );
    // get.summary gives the memory from the vmx.
    let out = sim.ssh_vim("esx1", "vmsvc/get.summary 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memorySizeMB = 1536,"), "{text}");
    // hostsummary gives the host's memory (16 GB).
    let out = sim.ssh_vim("esx2", "hostsvc/hostsummary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memorySize = 17179869184,"), "{text}");

    // Datastores as esxcli lists them.
    let out = sim.ssh("esx1", "esxcli storage filesystem list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Mount Point "), "{text}");
    assert!(
        text.contains("  local1  ") && text.contains("  shared1  "),
        "{text}"
    );
    let out = sim.ssh("esx2", "esxcli storage filesystem list");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("local1"));
    // esx2 sees shared1 but not local1.
    let out = sim.ssh_vim("esx2", "solo/registervm '[local1] loc1/loc1.vmx'");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("vim.fault.NotFound"),
        "{text}"
    );
    // Registering a running VM's vmx elsewhere works; powering it on does not.
    let out = sim.ssh_vim(
        "esx2",
        "solo/registervm /vmfs/volumes/shared1/web1/web1.vmx",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    let out = sim.ssh_vim("esx2", "vmsvc/power.on 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("Powering on VM:\n") && text.contains("Failed to lock the file"),
        "{text}"
    );
    assert_eq!(sim.vm_power("esx2", "web1").as_deref(), Some("off"));
    assert_eq!(sim.lock_owner("shared1", "web1").as_deref(), Some("esx1"));

    // Power esx1 off through its BMC (ipmitool, the second opinion): its sshd stops and its
    // leases expire.
    let bmc = sim.host("esx1").bmc.as_ref().expect("bmc");
    let (ok, text) = bmc.ipmitool("admin", "pass", &["chassis", "power", "off"]);
    assert!(ok, "{text}");
    assert_eq!(
        bmc.ipmitool_power(),
        Some(fencekit::PowerState::Off),
        "BMC reads off"
    );
    assert_eq!(sim.lock_owner("shared1", "web1"), None);
    let out = sim.ssh_vim("esx1", "vmsvc/getallvms");
    assert_eq!(out.status.code(), Some(255), "esx1 no longer answers SSH");
    let down = sim
        .first_event(|e| ev_is(e, "host_down", "esx1"))
        .expect("host_down");
    let off = sim
        .first_event(|e| ev_is(e, "bmc_power_off", "esx1"))
        .expect("bmc_power_off");
    let released = sim
        .first_event(|e| ev_is(e, "lock_released", "esx1") && e["reason"] == "lease expired")
        .expect("lease expired");
    let read_off = sim
        .first_event(|e| ev_is(e, "bmc_power_read", "esx1") && e["power"] == "off")
        .expect("read back off");
    assert!(off < released && released < down && down < read_off);

    // Now the power-on on esx2 asks "moved or copied" (web1 last ran on esx1); answering
    // "I moved it" lets it finish, and esx2 takes the lock.
    let mut child = sim
        .host("esx2")
        .esxi
        .ssh_wrapper()
        .to_str()
        .map(|w| {
            std::process::Command::new(w)
                .args(["-o", "BatchMode=yes", "-p"])
                .arg(sim.host("esx2").esxi.port().to_string())
                .arg("fencetest@127.0.0.1")
                .arg("vim-cmd vmsvc/power.on 1")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .expect("wrapper path");
    let mut asked = String::new();
    for _ in 0..100 {
        asked = String::from_utf8_lossy(&sim.ssh_vim("esx2", "vmsvc/message 1").stdout).into();
        if asked.contains("_vmx1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        asked.starts_with("Virtual machine message _vmx1:\nmsg.uuid.altered:"),
        "{asked}"
    );
    assert!(sim
        .ssh_vim("esx2", "vmsvc/message 1 _vmx1 1")
        .status
        .success());
    let st = child.wait().expect("power.on finished");
    assert!(st.success());
    assert_eq!(sim.vm_power("esx2", "web1").as_deref(), Some("on"));
    assert_eq!(sim.lock_owner("shared1", "web1").as_deref(), Some("esx2"));
    assert_eq!(
        String::from_utf8_lossy(&sim.ssh_vim("esx2", "vmsvc/message 1").stdout),
        "No message.\n"
    );

    // The BMC's power-on boots esx1 again: it answers, its VMs are off, web1 still runs
    // only on esx2 (a stale registration on esx1).
    let (ok, text) = bmc.ipmitool("admin", "pass", &["chassis", "power", "on"]);
    assert!(ok, "{text}");
    let out = sim.ssh_vim("esx1", "vmsvc/power.getstate 1");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("Powered off\n"));
    assert_eq!(sim.running_on("web1"), ["esx2"]);
    assert_eq!(sim.registered_on("web1"), ["esx1", "esx2"]);
    // Powering on the stale registration on esx1 fails on esx2's lock.
    let out = sim.ssh_vim("esx1", "vmsvc/power.on 1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Failed to lock the file"));
    // Unregister and autostart off on esx1 are logged.
    assert!(sim
        .ssh_vim(
            "esx1",
            "hostsvc/autostartmanager/update_autostartentry 1 none 0 -1 systemDefault 0 \
             systemDefault"
        )
        .status
        .success());
    assert!(sim.ssh_vim("esx1", "vmsvc/unregister 1").status.success());
    assert_eq!(sim.registered_on("web1"), ["esx2"]);
    let evs: Vec<String> = sim
        .events()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["host"].as_str().unwrap_or(""),
                e["ev"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "esx2 register",
        "esx2 power_on_failed",
        "esx2 question",
        "esx2 answer",
        "esx2 lock_taken",
        "esx2 power_on",
        "esx1 bmc_power_on",
        "esx1 host_up",
        "esx1 autostart",
        "esx1 unregister",
    ] {
        assert!(evs.iter().any(|e| e == want), "{want} missing: {evs:?}");
    }
    // Mutating calls are recognised in the call logs (dry-run scenarios rely on this).
    let m = sim.mutating_calls();
    assert!(
        m.iter()
            .any(|l| l == "esx2: vim-cmd solo/registervm /vmfs/volumes/shared1/web1/web1.vmx"),
        "{m:?}"
    );
    assert!(!m
        .iter()
        .any(|l| l.contains("getallvms") || l.contains("get.summary")));
}
