//! fence_esxi fenced by a real Pacemaker against fake ESXi hosts: `pcs stonith create` with a
//! static `pcmk_host_list`, with a `pcmk_host_map` to a vmid, and with
//! `pcmk_host_check=dynamic-list`; `stonith_admin --reboot <vm>` powers the VM off, then on, in
//! the simulator; a host whose `power.off` is ignored makes the fence fail with the VM still on.
//!
//! Pacemaker runs agents with an empty environment (no HOME), so every device gets an explicit
//! `known_hosts=<file>`.

use std::path::Path;
use std::time::Duration;

use crate::pacemaker_fake::{cluster_available, ok};
use crate::sim::sshd::{EsxiHost, SimVm};
use crate::util::pacemaker::{self, Cluster};

/// Simulator calls as `argv` strings, from index `from` on.
fn calls_since(host: &EsxiHost, from: usize) -> Vec<String> {
    host.calls()
        .iter()
        .skip(from)
        .filter_map(|c| c.get("argv")?.as_array().cloned())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// `power.off N` comes before `power.on N`, and a getstate read-back sits between them.
fn off_then_on(calls: &[String], vmid: u32) {
    let off = calls
        .iter()
        .position(|c| *c == format!("vim-cmd vmsvc/power.off {vmid}"));
    let on = calls
        .iter()
        .rposition(|c| *c == format!("vim-cmd vmsvc/power.on {vmid}"));
    match (off, on) {
        (Some(a), Some(b)) if a < b => assert!(
            calls[a..b]
                .iter()
                .any(|c| *c == format!("vim-cmd vmsvc/power.getstate {vmid}")),
            "off not read back before on: {calls:?}"
        ),
        _ => panic!("expected power.off {vmid} then power.on {vmid}: {calls:?}"),
    }
}

fn write_known_hosts(path: &Path, hosts: &[&EsxiHost]) {
    let mut text = String::new();
    for h in hosts {
        for l in h.known_hosts_lines() {
            text.push_str(&l);
            text.push('\n');
        }
    }
    std::fs::write(path, text).unwrap();
}

/// The device options every fence_esxi device here shares.
fn device_opts(host: &EsxiHost, kh: &Path) -> Vec<String> {
    vec![
        format!("ip={}", host.ip()),
        format!("ipport={}", host.port()),
        format!("username={}", host.user()),
        format!("password={}", host.password()),
        format!("known_hosts={}", kh.display()),
        "login_timeout=15".to_owned(),
        "shell_timeout=15".to_owned(),
        "stonith_status_sleep=0.2".to_owned(),
    ]
}

fn create(cluster: &Cluster, id: &str, host: &EsxiHost, kh: &Path, extra: &[&str]) {
    let mut opts = device_opts(host, kh);
    opts.extend(extra.iter().map(|s| (*s).to_owned()));
    create_with(cluster, id, &opts);
}

fn create_with(cluster: &Cluster, id: &str, opts: &[String]) {
    let mut args: Vec<String> = ["stonith", "create", id, "fence_esxi"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(opts.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&format!("pcs stonith create {id}"), &cluster.pcs(&refs));
    cluster
        .wait_running(id, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{id} did not start: {e}"));
}

fn reboot(cluster: &Cluster, target: &str) -> std::process::Output {
    cluster.stonith_admin(&["--reboot", target, "--timeout", "90"])
}

#[test]
fn pacemaker_fences_vms_through_fence_esxi() {
    if !cluster_available() {
        return;
    }
    let vms = [
        SimVm::new(1, "pcmk-node1", "on"),
        SimVm::new(2, "pcmk-node2", "on"),
        SimVm::new(3, "pcmk-node3", "on"),
        SimVm::new(4, "vm with spaces", "on"),
    ];
    let Some(host) = EsxiHost::start(&vms) else {
        return;
    };
    let Some(stuck) = EsxiHost::start(&[SimVm::new(7, "pcmk-stuck", "on")]) else {
        return;
    };
    stuck.set_fault("noop", &["power.off"]);
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    write_known_hosts(&kh, &[&host, &stuck]);

    let cluster = Cluster::up(&pacemaker::agents_dir().unwrap()).unwrap();

    // Metadata through pcs.
    let out = cluster.pcs(&["stonith", "describe", "fence_esxi"]);
    ok("pcs stonith describe fence_esxi", &out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for p in [
        "known_hosts",
        "host_key_fingerprint",
        "identity_file",
        "plug",
    ] {
        assert!(text.contains(p), "describe lacks {p}: {text}");
    }

    // validate-all through stonith_admin (no connection).
    let before = host.calls().len();
    let mut v = vec!["--validate", "--agent", "fence_esxi"];
    let opts = device_opts(&host, &kh);
    for o in &opts {
        v.push("--option");
        v.push(o);
    }
    ok("stonith_admin --validate", &cluster.stonith_admin(&v));
    assert_eq!(
        host.calls().len(),
        before,
        "validate-all contacted the host"
    );

    // 1. Static list: the plug is the node name = the VM name.
    create(
        &cluster,
        "esxi_static",
        &host,
        &kh,
        &["pcmk_host_list=pcmk-node1"],
    );
    // The start ran monitor: one light command, no inventory scan.
    let calls = calls_since(&host, before);
    assert!(calls.iter().any(|c| c == "vmware -v"), "{calls:?}");
    assert!(calls.iter().all(|c| !c.contains("getallvms")), "{calls:?}");
    let before = host.calls().len();
    let out = reboot(&cluster, "pcmk-node1");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot pcmk-node1", &out)
    );
    off_then_on(&calls_since(&host, before), 1);
    assert_eq!(host.vm_state("pcmk-node1").as_deref(), Some("on"));

    // 2. Static map: cluster node name -> vmid or VM name.
    // Exactly the README's quick start (plus ipport): default timeouts, two map entries.
    create_with(
        &cluster,
        "esxi_map",
        &[
            format!("ip={}", host.ip()),
            format!("ipport={}", host.port()),
            format!("username={}", host.user()),
            format!("password={}", host.password()),
            format!("known_hosts={}", kh.display()),
            "pcmk_host_map=target-b:2;target-c:pcmk-node3".to_owned(),
        ],
    );
    let before = host.calls().len();
    let out = reboot(&cluster, "target-b");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot target-b", &out)
    );
    let calls = calls_since(&host, before);
    off_then_on(&calls, 2);
    assert!(
        calls.iter().all(|c| !c.ends_with("power.off 1")),
        "{calls:?}"
    );
    assert_eq!(host.vm_state("pcmk-node2").as_deref(), Some("on"));
    let before = host.calls().len();
    let out = reboot(&cluster, "target-c");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot target-c", &out)
    );
    off_then_on(&calls_since(&host, before), 3);
    // off through pcs: the VM stays off.
    let out = cluster.pcs(&["stonith", "fence", "target-b", "--off"]);
    ok("pcs stonith fence target-b --off", &out);
    assert_eq!(host.vm_state("pcmk-node2").as_deref(), Some("off"));
    cluster.delete_device("esxi_static").unwrap();
    cluster.delete_device("esxi_map").unwrap();

    // 3. Dynamic list: Pacemaker runs `list` and fences the VM by name.
    create(
        &cluster,
        "esxi_dynamic",
        &host,
        &kh,
        &["pcmk_host_check=dynamic-list"],
    );
    let out = cluster.stonith_admin(&["--list", "pcmk-node3"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("esxi_dynamic"),
        "{}",
        pacemaker::describe("stonith_admin --list pcmk-node3", &out)
    );
    let before = host.calls().len();
    let out = reboot(&cluster, "pcmk-node3");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        pacemaker::describe("stonith_admin --reboot pcmk-node3", &out)
    );
    off_then_on(&calls_since(&host, before), 3);
    assert_eq!(host.vm_state("pcmk-node3").as_deref(), Some("on"));
    // A node the host does not have: no device can fence it.
    let out = cluster.stonith_admin(&["--reboot", "no-such-vm", "--timeout", "30"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "fenced a VM that does not exist"
    );
    cluster.delete_device("esxi_dynamic").unwrap();

    // 4. A host whose power.off silently does nothing: the fence fails, the VM stays on.
    create(
        &cluster,
        "esxi_stuck",
        &stuck,
        &kh,
        &[
            "pcmk_host_list=pcmk-stuck",
            "power_timeout=3",
            "pcmk_reboot_timeout=60",
        ],
    );
    let before = stuck.calls().len();
    let log_at = cluster.log_offset();
    let out = reboot(&cluster, "pcmk-stuck");
    assert_ne!(
        out.status.code(),
        Some(0),
        "an ignored power.off was reported as fenced: {}",
        pacemaker::describe("stonith_admin --reboot pcmk-stuck", &out)
    );
    let calls = calls_since(&stuck, before);
    assert!(
        calls.iter().any(|c| c == "vim-cmd vmsvc/power.off 7"),
        "{calls:?}"
    );
    assert!(calls.iter().all(|c| !c.contains("power.on")), "{calls:?}");
    assert_eq!(stuck.vm_state("pcmk-stuck").as_deref(), Some("on"));
    // The agent's reason reached Pacemaker's log.
    let log = cluster.log_since(log_at);
    assert!(
        log.contains("Failed: Timed out waiting to power OFF"),
        "pacemaker log lacks the agent's reason:\n{log}"
    );
    cluster.delete_device("esxi_stuck").unwrap();

    cluster.shutdown().unwrap();
}
