//! Regressions: one test per bug found, named after the issue it belongs to.

use std::fs;

use crate::agentcmd::{self, args};
use crate::kvmsim::KvmSim;

/// Issue 5: a guest that live-migrated to a host named only in the `hosts` option (no map line
/// names it) was reported OFF after asking the mapped host alone, and reboot then started a
/// second copy of it.
#[test]
fn r5_guest_on_a_host_no_map_line_names() {
    let Some(mut sim) = KvmSim::new("r5") else {
        return;
    };
    sim.start_hosts(&[("cfhost1", vec![("guest11", true)]), ("cfhost2", vec![])]);
    sim.migrate("cfhost1", "cfhost2", "guest11", true);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kvmguests.conf");
    fs::write(&conf, KvmSim::kvmguests_conf(&[("guest11", "cfhost1")])).unwrap();
    fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let conf_arg = format!("--guests-conf={}", conf.display());
    let hosts_arg = format!("--hosts={}", sim.hosts_option());
    let key = sim.client_key();
    let kh = format!("--known-hosts={}", sim.known_hosts().display());
    let user = sim.user();
    let common = [
        conf_arg.as_str(),
        hosts_arg.as_str(),
        "-l",
        user.as_str(),
        "-k",
        key.to_str().unwrap(),
        kh.as_str(),
        "-n",
        "cfguest11",
        "--stonith-status-sleep=0.2",
    ];
    let bin = agentcmd::bin("fence_kvmguest");
    let status = args(&bin, &[&common[..], &["-o", "status"]].concat());
    assert_eq!(
        (status.code, status.stdout.as_str()),
        (0, "Status: ON\n"),
        "{}",
        status.stderr
    );
    let r = args(&bin, &[&common[..], &["-o", "reboot"]].concat());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Success: Rebooted\n"),
        "{}",
        r.stderr
    );
    let running: Vec<(String, String)> = sim
        .where_is("guest11")
        .into_iter()
        .filter(|(_, st)| st == "running")
        .collect();
    assert_eq!(
        running.len(),
        1,
        "guest11 runs on several hosts: {running:?}"
    );
    assert!(
        sim.calls("cfhost2").contains("destroy"),
        "not destroyed where it ran"
    );
}
