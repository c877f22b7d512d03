//! What an admin reads: the complete stderr of each agent's main failures, line by line.
//!
//! For fence_esxi, fence_sshcmd, fence_kvmguest and fence_bmc: a wrong password (against the
//! real simulators: sshd with the simulated `vim-cmd`, sshd + libvirt's test driver, ipmi_sim),
//! a host that does not answer (a closed loopback port, and a blackholed one: a socket that
//! takes connections or datagrams and never says a word), an unknown plug, a missing required
//! option and a bad action; for vm-evacuate, its command-line and inventory failures. Every
//! assertion is the whole text of every stderr line; only the timestamp is cut and the
//! run's own port numbers read `PORT`. No `contains`: a doubled prefix, a stray usage footer,
//! Rust debug formatting or an `(os error N)` would all fail here.

use std::net::{TcpListener, UdpSocket};

use crate::agentcmd::{self, Mode, Run};
use crate::support::fixture::{default_fx, o, Fx, O};

/// The usage footer: only ever under a usage error.
const FOOTER: &str = "ERROR: Please use '-h' for usage";

/// A wrong password (never shown anywhere).
const WRONG: &str = "wrong-Secret-42";

/// The login timeout of the "not answering" cases (named in their message).
const LOGIN: &str = "2";

/// `line` without the log timestamp (`2026-01-31 12:00:00,123 `).
fn untimed(line: &str) -> &str {
    let b = line.as_bytes();
    let stamped = b.len() > 24
        && b.get(4) == Some(&b'-')
        && b.get(10) == Some(&b' ')
        && b.get(19) == Some(&b',')
        && b.get(23) == Some(&b' ');
    if stamped {
        line.get(24..).unwrap_or(line)
    } else {
        line
    }
}

/// Each stderr line without its timestamp, each of `ports` written `PORT`.
fn lines(r: &Run, ports: &[u16]) -> Vec<String> {
    r.stderr
        .lines()
        .map(|l| {
            let mut l = untimed(l).to_owned();
            for p in ports {
                l = l.replace(&p.to_string(), "PORT");
            }
            l
        })
        .collect()
}

/// Exit `code`, nothing on stdout (never a state, never `Success`), exactly `want` on stderr,
/// and no password anywhere.
fn fails_with(r: &Run, code: i32, ports: &[u16], want: &[&str]) {
    assert!(
        !r.stdout.contains(WRONG) && !r.stderr.contains(WRONG),
        "a password leaked: {r:?}"
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), lines(r, ports)),
        (code, "", want.iter().map(|s| s.to_string()).collect()),
        "\nwhole stderr:\n{}",
        r.stderr
    );
}

/// A loopback TCP port nothing listens on (bound, read, released).
fn closed_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A loopback TCP listener that never accepts: the kernel completes the connection (backlog)
/// and nothing is ever said on it, as a host whose sshd hangs.
fn silent_tcp() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// A loopback UDP port nothing is bound to (the kernel answers ICMP port unreachable).
fn closed_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A loopback UDP socket that receives and never answers, as a BMC that hangs.
fn silent_udp() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = s.local_addr().expect("addr").port();
    (s, port)
}

/// Device options of an SSH agent for a host that does not answer at `port`.
fn nowhere(port: u16) -> Vec<O> {
    vec![
        o("ip", "127.0.0.1"),
        o("ipport", &port.to_string()),
        o("username", "root"),
        o("password", WRONG),
        o("login_timeout", LOGIN),
    ]
}

fn run(agent: &str, opts: &[O]) -> Run {
    crate::support::fixture::run_opts(agent, Mode::Stdin, opts)
}

// ---------------------------------------------------------------------------------------------
// fence_esxi

#[test]
fn esxi_wrong_password() {
    let Some(f) = default_fx() else { return };
    let port = f.host.port();
    let r = f.run_agent(
        "fence_esxi",
        Mode::Stdin,
        &[],
        &[o("password", WRONG), o("action", "off"), o("plug", "cl0")],
    );
    fails_with(
        &r,
        1,
        &[port],
        &["ERROR: Failed: Unable to connect/login to fencing device: fencetest@[127.0.0.1]:PORT: \
           the server did not accept the password (tried keyboard-interactive; the server offers \
           publickey,keyboard-interactive; last error: keyboard-interactive: Authentication \
           failed (keyboard-interactive))"],
    );
}

#[test]
fn esxi_host_not_answering() {
    let closed = closed_tcp_port();
    let mut opts = nowhere(closed);
    opts.extend([o("action", "off"), o("plug", "cl0")]);
    fails_with(
        &run("fence_esxi", &opts),
        1,
        &[closed],
        &[
            "ERROR: Failed: Unable to connect/login to fencing device: connect to host 127.0.0.1 \
           port PORT: connection refused",
        ],
    );
    let (_silent, port) = silent_tcp();
    let mut opts = nowhere(port);
    opts.extend([o("action", "status"), o("plug", "cl0")]);
    fails_with(
        &run("fence_esxi", &opts),
        1,
        &[port],
        &[
            "ERROR: Failed: Unable to obtain correct plug status or plug is not available: \
           Connection timed out: no SSH answer from 127.0.0.1 port PORT within 2 s",
        ],
    );
}

#[test]
fn esxi_unknown_plug_missing_option_bad_action() {
    let Some(f) = default_fx() else { return };
    let r = f.run_agent(
        "fence_esxi",
        Mode::Stdin,
        &[],
        &[o("action", "off"), o("plug", "nosuch")],
    );
    fails_with(
        &r,
        1,
        &[],
        &["ERROR: Failed: VM 'nosuch' not found on the host"],
    );
    usage_failures(&f, "fence_esxi", &[o("plug", "cl0")]);
}

/// A missing address and an unknown action: the first problem, then the usage footer.
fn usage_failures(f: &Fx, agent: &str, extra: &[O]) {
    let mut with_action = extra.to_vec();
    with_action.push(o("action", "off"));
    let r = f.run_agent(agent, Mode::Stdin, &["ip"], &with_action);
    fails_with(
        &r,
        1,
        &[],
        &["ERROR: Failed: You have to enter fence address", FOOTER],
    );
    let mut bogus = extra.to_vec();
    bogus.push(o("action", "bogus"));
    let r = f.run_agent(agent, Mode::Stdin, &[], &bogus);
    fails_with(
        &r,
        1,
        &[],
        &["ERROR: Failed: Unrecognised action 'bogus'", FOOTER],
    );
}

// ---------------------------------------------------------------------------------------------
// fence_sshcmd

/// fence_sshcmd's commands for vmid 1 of the simulated host.
fn sshcmd_commands() -> Vec<O> {
    vec![
        o("on_command", "vim-cmd vmsvc/power.on 1"),
        o("off_command", "vim-cmd vmsvc/power.off 1"),
        o("status_command", "vim-cmd vmsvc/power.getstate 1"),
        o("status_on_regex", "(?m)^Powered on$"),
        o("status_off_regex", "(?m)^Powered off$"),
    ]
}

#[test]
fn sshcmd_wrong_password() {
    let Some(f) = default_fx() else { return };
    let port = f.host.port();
    let mut extra = sshcmd_commands();
    extra.extend([o("password", WRONG), o("action", "off")]);
    let r = f.run_agent("fence_sshcmd", Mode::Stdin, &[], &extra);
    fails_with(
        &r,
        1,
        &[port],
        &["ERROR: Failed: Unable to connect/login to fencing device: fencetest@[127.0.0.1]:PORT: \
           the server did not accept the password (tried keyboard-interactive; the server offers \
           publickey,keyboard-interactive; last error: keyboard-interactive: Authentication \
           failed (keyboard-interactive))"],
    );
}

#[test]
fn sshcmd_host_not_answering() {
    let closed = closed_tcp_port();
    let mut opts = nowhere(closed);
    opts.extend(sshcmd_commands());
    opts.push(o("action", "off"));
    fails_with(
        &run("fence_sshcmd", &opts),
        1,
        &[closed],
        &[
            "ERROR: Failed: Unable to connect/login to fencing device: connect to host 127.0.0.1 \
           port PORT: connection refused",
        ],
    );
    let (_silent, port) = silent_tcp();
    let mut opts = nowhere(port);
    opts.extend(sshcmd_commands());
    opts.push(o("action", "off"));
    fails_with(
        &run("fence_sshcmd", &opts),
        1,
        &[port],
        &["ERROR: Failed: Connection timed out: no SSH answer from 127.0.0.1 port PORT within 2 s"],
    );
}

#[test]
fn sshcmd_missing_option_and_bad_action() {
    let Some(f) = default_fx() else { return };
    // fence_sshcmd has no plug: its commands name the target.
    let mut no_off: Vec<O> = sshcmd_commands();
    no_off.retain(|(n, _)| *n != "off_command");
    no_off.push(o("action", "off"));
    let r = f.run_agent("fence_sshcmd", Mode::Stdin, &[], &no_off);
    fails_with(
        &r,
        1,
        &[],
        &["ERROR: Failed: You have to set --off-command", FOOTER],
    );
    usage_failures(&f, "fence_sshcmd", &sshcmd_commands());
}

// ---------------------------------------------------------------------------------------------
// fence_kvmguest

/// A private 0600 guests map naming guest11 on cfhost1 and guest21 on cfhost2.
fn kvm_map(dir: &std::path::Path) -> String {
    let p = crate::kvmguest::write_conf(
        dir,
        "kvmguests.conf",
        "guest11 cfhost1 cluster1 cfguest11 127.0.1.1 root guest-secret-1\n\
         guest21 cfhost2 cluster1 cfguest21 127.0.1.2 root guest-secret-2\n",
        0o600,
    );
    p.display().to_string()
}

#[test]
fn kvmguest_wrong_password() {
    let Some(k) = crate::kvmguest::two_hosts("msgpw") else {
        return;
    };
    let ports: Vec<u16> = k
        .sim
        .hosts_option()
        .split(',')
        .filter_map(|h| h.rsplit(':').next()?.parse().ok())
        .collect();
    let mut opts = k.common();
    for (n, v) in [
        ("password", WRONG),
        ("action", "status"),
        ("plug", "cfguest11"),
    ] {
        opts.push(crate::kvmguest::opt(n, None, Some(v)));
    }
    let r = crate::kvmguest::run_opts(Mode::Stdin, &opts);
    let refused = "Unable to connect/login to fencing device: fencetest@[127.0.0.1]:PORT: the \
                   server did not accept the password (tried password; the server offers \
                   publickey,password; last error: password: Authentication failed \
                   (username/password))";
    fails_with(
        &r,
        1,
        &ports,
        &[&format!(
            "ERROR: Failed: Unable to obtain correct plug status or plug is not available (guest \
             'guest11' may be running on a host that gave no usable answer: cfhost1: {refused}; \
             cfhost2: {refused})"
        )],
    );
}

#[test]
fn kvmguest_hosts_not_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = kvm_map(dir.path());
    let closed = closed_tcp_port();
    let (_silent, port) = silent_tcp();
    let opts = [
        o("guests_conf", &map),
        o(
            "hosts",
            &format!("cfhost1=127.0.0.1:{closed},cfhost2=127.0.0.1:{port}"),
        ),
        o("username", "root"),
        o("password", WRONG),
        o("login_timeout", LOGIN),
        o("action", "off"),
        o("plug", "cfguest11"),
    ];
    fails_with(
        &run("fence_kvmguest", &opts),
        1,
        &[closed, port],
        &[
            "ERROR: Failed: Unable to obtain correct plug status or plug is not available (host \
             cfhost1 did not answer (connect to host 127.0.0.1 port PORT: connection refused) \
             and no BMC is known for it (an `inventory` with its [[host]] bmc_address settles \
             it): the state of its VMs is unknown; host cfhost2 did not answer (no SSH answer \
             from 127.0.0.1 port PORT within 2 s) and no BMC is known for it (an `inventory` with \
             its [[host]] bmc_address settles it): the state of its VMs is unknown)",
        ],
    );
}

#[test]
fn kvmguest_unknown_plug_missing_option_bad_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = kvm_map(dir.path());
    let closed = closed_tcp_port();
    let base = vec![
        o("guests_conf", &map),
        o("hosts", &format!("cfhost1=127.0.0.1:{closed}")),
        o("username", "root"),
        o("password", WRONG),
    ];
    let with = |extra: &[O]| {
        let mut v = base.clone();
        v.extend_from_slice(extra);
        v
    };
    // Not in the map: said once, with one prefix, before any host is asked.
    fails_with(
        &run(
            "fence_kvmguest",
            &with(&[o("action", "off"), o("plug", "nosuch")]),
        ),
        1,
        &[],
        &["ERROR: Failed: guest 'nosuch' is not in the guests map"],
    );
    let mut no_plug = base.clone();
    no_plug.push(o("action", "off"));
    fails_with(
        &run("fence_kvmguest", &no_plug),
        1,
        &[],
        &[
            "ERROR: Failed: You have to enter plug number or machine identification",
            FOOTER,
        ],
    );
    fails_with(
        &run(
            "fence_kvmguest",
            &with(&[o("action", "bogus"), o("plug", "cfguest11")]),
        ),
        1,
        &[],
        &["ERROR: Failed: Unrecognised action 'bogus'", FOOTER],
    );
}

// ---------------------------------------------------------------------------------------------
// fence_bmc

fn bmc(port: u16, password: &str, action: &str) -> Vec<O> {
    vec![
        o("ip", "127.0.0.1"),
        o("ipport", &port.to_string()),
        o("username", "admin"),
        o("password", password),
        o("lanplus", "1"),
        o("login_timeout", LOGIN),
        o("action", action),
    ]
}

#[test]
fn bmc_wrong_password() {
    let Some(sim) = crate::bmc::sim(&[]) else {
        return;
    };
    fails_with(
        &run("fence_bmc", &bmc(sim.port, WRONG, "off")),
        1,
        &[sim.port],
        &[
            "ERROR: Failed: Unable to connect/login to fencing device: RAKP 2 authentication \
             code mismatch: wrong password (or user name)",
        ],
    );
}

#[test]
fn bmc_not_answering() {
    let closed = closed_udp_port();
    fails_with(
        &run("fence_bmc", &bmc(closed, WRONG, "off")),
        1,
        &[closed],
        &[
            "ERROR: Failed: Connection timed out: no IPMI answer from 127.0.0.1 port PORT within \
           2 s: the host reports that nothing listens on that UDP port (Get Channel \
           Authentication Capabilities)",
        ],
    );
    let (_silent, port) = silent_udp();
    fails_with(
        &run("fence_bmc", &bmc(port, WRONG, "status")),
        1,
        &[port],
        &[
            "ERROR: Failed: Unable to obtain correct plug status or plug is not available: \
           Connection timed out: no IPMI answer from 127.0.0.1 port PORT within 2 s (Get \
           Channel Authentication Capabilities)",
        ],
    );
}

#[test]
fn bmc_missing_option_and_bad_action() {
    // fence_bmc fences one machine: it has no plug to get wrong.
    let port = closed_udp_port();
    let mut no_ip = bmc(port, WRONG, "off");
    no_ip.retain(|(n, _)| *n != "ip");
    fails_with(
        &run("fence_bmc", &no_ip),
        1,
        &[],
        &["ERROR: Failed: You have to enter fence address", FOOTER],
    );
    fails_with(
        &run("fence_bmc", &bmc(port, WRONG, "bogus")),
        1,
        &[],
        &["ERROR: Failed: Unrecognised action 'bogus'", FOOTER],
    );
}

// ---------------------------------------------------------------------------------------------
// vm-evacuate (exit 2: usage or inventory error)

#[test]
fn evacuate_command_line_and_inventory_failures() {
    let bin = agentcmd::bin("vm-evacuate");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state").display().to_string();
    let run = |a: &[&str]| agentcmd::args(&bin, a);
    let help = "Try 'vm-evacuate --help'.";
    fails_with(
        &run(&[]),
        2,
        &[],
        &["vm-evacuate: a command is required", help],
    );
    fails_with(
        &run(&["bogus"]),
        2,
        &[],
        &["vm-evacuate: error: unrecognized subcommand 'bogus'", help],
    );
    fails_with(
        &run(&["--state-dir", &state, "plan"]),
        2,
        &[],
        &[
            "vm-evacuate: error: the following required arguments were not provided:",
            "  --host <H>",
            help,
        ],
    );
    let missing = dir.path().join("none.toml").display().to_string();
    fails_with(
        &run(&["--config", &missing, "--state-dir", &state, "check"]),
        2,
        &[],
        &[&format!(
            "inventory {missing}: cannot open: No such file or directory"
        )],
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "garbage = [\n").expect("write");
    let bad = bad.display().to_string();
    fails_with(
        &run(&["--config", &bad, "--state-dir", &state, "check"]),
        2,
        &[],
        &[&format!(
            "{bad}: line 1: garbage: unclosed array, expected `]`"
        )],
    );
}
