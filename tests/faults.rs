//! The fault matrix: every agent (fence_esxi, fence_bmc, fence_kvmguest, the real binaries)
//! against every fault its simulators can inject, one fence (`off`) per cell:
//!
//! - hang, dropped connection (before the power-off, and after it with the answer lost),
//!   garbage, a device error, an ignored power-off, a slow transition, wrong credentials, an
//!   unknown and a changed SSH host key, a host that stops answering, an unreachable host;
//! - for IPMI also 30 % packet loss both ways and duplicated + delayed replies (the lossy relay
//!   of `tests/support/sim_ipmi/relay.py`) and a BMC that answers only junk.
//!
//! Each cell asserts the exit code, a meaningful `Failed:` text, the elapsed time against the
//! agent's whole-action budget derived from the options passed (the sum of its phase timeouts,
//! as the watchdog of `src/protocol/run.rs` computes it) plus a generous margin (this proves
//! "it never hangs"; it is not a speed test), and no false success: exit 0 only when the
//! simulator itself shows the target off. Faults that still allow a correct read-back (packet
//! loss, duplication, a slow transition within `power_timeout`, a connection lost after the
//! power-off) must succeed AND leave the target off.
//!
//! The three agents run in parallel threads, each against its own simulator, cells in
//! sequence. With `FENCEKIT_WRITE_REPORTS=1` the matrix is written to `bench/RELIABILITY.md`
//! (the assertions run either way).

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agentcmd::{Mode, Run};
use crate::bmc::pcmk_stdin;
use crate::ipmisim::{Bmc, Relay};
use crate::kvmguest::{opt, OwnedOpt};
use crate::support::fixture::{o, O};

/// The timeouts a cell passes to the agent; the time bound is derived from them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    login: u64,
    shell: u64,
    power: u64,
    retry_on: u64,
}

impl Limits {
    /// The options as `(stdin name, value)`; `power_wait` is always 0.
    fn pairs(self) -> Vec<(&'static str, String)> {
        vec![
            ("login_timeout", self.login.to_string()),
            ("shell_timeout", self.shell.to_string()),
            ("power_timeout", self.power.to_string()),
            ("power_wait", "0".to_owned()),
            ("retry_on", self.retry_on.to_string()),
        ]
    }

    /// The whole budget of an `off` with these options, as the watchdog computes it: login,
    /// two commands to find the target, then per attempt (1 + retry_on) two commands plus
    /// power_wait and power_timeout, plus 5 s.
    fn bound(self) -> Duration {
        let step = 2 * self.shell + self.power;
        Duration::from_secs(self.login + 2 * self.shell + step * (1 + self.retry_on) + 5)
    }
}

/// The margin on top of the bound: the machine is shared and noisy.
fn margin(bound: Duration) -> Duration {
    (bound / 2).max(Duration::from_secs(10))
}

/// What a cell must end with.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Exit 1, `Failed:` and this text (case-insensitive) on stderr.
    Fails(&'static str),
    /// Exit 0, `Success: Powered OFF`, and the simulator shows the target off.
    Fences,
}

/// One agent × fault run.
#[derive(Debug)]
struct Cell {
    agent: &'static str,
    fault: &'static str,
    how: String,
    want: Want,
    bound: Duration,
    run: Run,
    /// The simulator's own reading of the target after the run.
    target_off: bool,
}

impl Cell {
    /// Everything wrong with this cell (empty = it passed).
    fn problems(&self) -> Vec<String> {
        let r = &self.run;
        let mut p = Vec::new();
        let limit = self.bound + margin(self.bound);
        if r.elapsed > limit {
            p.push(format!(
                "took {:.1} s, more than the bound {} s + margin",
                r.elapsed.as_secs_f64(),
                self.bound.as_secs()
            ));
        }
        if r.code == 0 && !self.target_off {
            p.push("FALSE SUCCESS: exit 0 but the simulator shows the target on".to_owned());
        }
        if r.code != 0 && (r.stdout.contains("Success") || r.stdout.contains("Status: OFF")) {
            p.push("a success or OFF line on a failure".to_owned());
        }
        match self.want {
            Want::Fails(needle) => {
                if r.code != 1 {
                    p.push(format!("exit {} (want 1)", r.code));
                }
                if !r.stderr.contains("Failed:") {
                    p.push("no `Failed:` line".to_owned());
                }
                if !r.stderr.to_lowercase().contains(&needle.to_lowercase()) {
                    p.push(format!("stderr lacks {needle:?}"));
                }
            }
            Want::Fences => {
                if r.code != 0 || r.stdout != "Success: Powered OFF\n" {
                    p.push(format!("exit {} (want 0 and Success: Powered OFF)", r.code));
                }
                if !self.target_off {
                    p.push("the target is not off".to_owned());
                }
            }
        }
        p
    }

    /// The agent's `Failed:` and warning lines without their timestamps (or the stdout
    /// line on success), shortened for the table.
    fn said(&self) -> String {
        let text = if self.run.code == 0 {
            self.run.stdout.lines().next().unwrap_or("").to_owned()
        } else {
            self.run
                .stderr
                .lines()
                .filter_map(|l| {
                    ["WARNING: ", "Failed: "]
                        .iter()
                        .find_map(|k| l.find(k).map(|i| &l[i..]))
                })
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let mut s: String = text.chars().take(220).collect();
        if s.len() < text.len() {
            s.push('…');
        }
        s.replace('|', "\\|").replace('`', "'")
    }
}

/// One line per finished cell (visible with `--nocapture`).
fn progress(c: &Cell) {
    println!(
        "{:<15} {:<40} exit {} {:>5.1}s (bound {} s) target_off={} {}",
        c.agent,
        c.fault,
        c.run.code,
        c.run.elapsed.as_secs_f64(),
        c.bound.as_secs(),
        c.target_off,
        c.said()
    );
    if std::env::var_os("FENCEKIT_FAULTS_SHOW").is_some() {
        println!("{}", show(c));
    }
}

fn show(c: &Cell) -> String {
    format!(
        "{} / {} ({}): code={} elapsed={:.1}s target_off={}\n--- stdout\n{}--- stderr\n{}",
        c.agent,
        c.fault,
        c.how,
        c.run.code,
        c.run.elapsed.as_secs_f64(),
        c.target_off,
        c.run.stdout,
        c.run.stderr
    )
}

// ---------------------------------------------------------------------------------------------
// fence_esxi: one fake ESXi host (tests/support/sim/esxi).

fn esxi_cells() -> Vec<Cell> {
    let Some(mut f) = crate::support::fixture::default_fx() else {
        return Vec::new();
    };
    let quick = Limits {
        login: 5,
        shell: 3,
        power: 4,
        retry_on: 0,
    };
    let mut cells = Vec::new();
    // Runs `off` on `plug` with `limits` and `extra`, after arming `arm`, then records it.
    let mut cell = |f: &crate::support::fixture::Fx,
                    fault: &'static str,
                    how: &str,
                    plug: &str,
                    limits: Limits,
                    extra: &[O],
                    want: Want| {
        let mut opts: Vec<O> = vec![
            o("action", "off"),
            o("plug", plug),
            o("stonith_status_sleep", "0.5"),
        ];
        opts.extend(limits.pairs().iter().map(|(n, v)| o(n, v)));
        opts.extend_from_slice(extra);
        let run = f.run(Mode::Stdin, &opts);
        f.host.clear_faults();
        let target_off = f.host.vm_state(plug).as_deref() == Some("off");
        let c = Cell {
            agent: "fence_esxi",
            fault,
            how: how.to_owned(),
            want,
            bound: limits.bound(),
            run,
            target_off,
        };
        progress(&c);
        cells.push(c);
    };

    f.host.set_fault("hang", &["120", "match=power.getstate"]);
    cell(
        &f,
        "hang",
        "`vim-cmd power.getstate` sleeps 120 s",
        "cl0",
        quick,
        &[],
        Want::Fails("did not finish within"),
    );
    f.host.set_fault("drop", &["match=power.off"]);
    cell(
        &f,
        "drop before the power-off",
        "the session's sshd is killed at every `power.off`",
        "cl0",
        quick,
        &[],
        Want::Fails("connection lost"),
    );
    f.host
        .set_fault("drop", &["mode=after", "match=power.off", "times=1"]);
    cell(
        &f,
        "drop after the power-off (answer lost)",
        "`power.off` runs, then the sshd is killed",
        "cl1",
        quick,
        &[],
        Want::Fences,
    );
    f.host
        .set_fault("garble", &["junk", "match=power.getstate"]);
    cell(
        &f,
        "garbage",
        "`power.getstate` prints junk",
        "cl0",
        quick,
        &[],
        Want::Fails("unrecognised vim-cmd output"),
    );
    f.host
        .set_fault("exit", &["1", "msg=vim-cmd: busy", "match=power.off"]);
    cell(
        &f,
        "device error",
        "`power.off` exits 1 (`vim-cmd: busy`)",
        "cl0",
        quick,
        &[],
        Want::Fails("vim-cmd: busy"),
    );
    f.host.set_fault("noop", &["power.off"]);
    cell(
        &f,
        "ignored power-off",
        "`power.off` says success, the VM stays on",
        "cl0",
        quick,
        &[],
        Want::Fails("Timed out waiting to power OFF"),
    );
    f.host.set_fault("slow", &["2"]);
    cell(
        &f,
        "slow transition",
        "the VM goes off 2 s after `power.off` returned (power_timeout 20)",
        "node 3 with spaces",
        Limits { power: 20, ..quick },
        &[],
        Want::Fences,
    );
    cell(
        &f,
        "wrong credentials",
        "a wrong password (keyboard-interactive)",
        "cl0",
        quick,
        &[o("password", "wrong-Secret-42")],
        Want::Fails("did not accept the password"),
    );
    let empty = f.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write known_hosts");
    cell(
        &f,
        "unknown host key",
        "known_hosts does not list the host",
        "cl0",
        quick,
        &[o("known_hosts", &empty.display().to_string())],
        Want::Fails("is unknown"),
    );
    f.host.freeze();
    cell(
        &f,
        "host stops answering",
        "the sshd listener is stopped (SIGSTOP)",
        "cl0",
        quick,
        &[],
        Want::Fails("no SSH answer from"),
    );
    f.host.thaw();
    f.host.set_fault("login_delay", &["30"]);
    cell(
        &f,
        "login hangs",
        "the session's shell starts 30 s late",
        "cl0",
        quick,
        &[],
        Want::Fails("did not finish within"),
    );
    let dead = closed_tcp_port();
    cell(
        &f,
        "unreachable host",
        "nothing listens on the port (connection refused)",
        "cl0",
        quick,
        &[o("ipport", &dead.to_string())],
        Want::Fails("connection refused"),
    );
    // Last: the host is reinstalled with new keys.
    f.host.restart(true);
    cell(
        &f,
        "changed host key",
        "the host restarted with new keys; known_hosts has the old ones",
        "cl0",
        quick,
        &[],
        Want::Fails("does NOT match"),
    );
    drop(f);
    esxi_hosts_cells(&mut cells);
    cells
}

/// fence_esxi across hosts (`inventory`, tests/support/sim/evac.rs: hosts with BMCs): a host that
/// stops answering SSH, without host_fence, with host_fence=bmc, and with its BMC hung.
fn esxi_hosts_cells(cells: &mut Vec<Cell>) {
    use crate::sim::evac::{HostSpec, Inventory, Sim, VmSpec};
    let Some(sim) = Sim::start(
        &[HostSpec::new("h1", &["ds1"]), HostSpec::new("h2", &["ds2"])],
        &[
            VmSpec::new("dead-vm", "h1", "ds1"),
            VmSpec::new("live-vm", "h2", "ds2"),
        ],
        &Inventory::default(),
    ) else {
        return;
    };
    sim.isolate("h1");
    let limits = Limits {
        login: 3,
        shell: 3,
        power: 4,
        retry_on: 0,
    };
    let mut cell = |fault: &'static str, how: &str, plug: &str, host_fence: &str, want: Want| {
        let mut text = format!(
            "action=off\nplug={plug}\ninventory={}\nhost_fence={host_fence}\n\
             stonith_status_sleep=0.5\n",
            sim.config.display()
        );
        for (n, v) in limits.pairs() {
            text.push_str(&format!("{n}={v}\n"));
        }
        let run = crate::agentcmd::stdin(&crate::agentcmd::bin("fence_esxi"), &text);
        let host = if plug == "dead-vm" { "h1" } else { "h2" };
        let target_off = sim.vm_power(host, plug).as_deref() == Some("off");
        let c = Cell {
            agent: "fence_esxi",
            fault,
            how: how.to_owned(),
            want,
            bound: limits.bound(),
            run,
            target_off,
        };
        progress(&c);
        cells.push(c);
    };
    let bmc = sim.host("h1").bmc.as_ref().expect("bmc");
    bmc.hang();
    cell(
        "dead host, BMC hangs (hosts)",
        "inventory, host_fence=bmc: h1 refuses SSH, its BMC (SIGSTOP) never answers",
        "dead-vm",
        "bmc",
        Want::Fails("BMC"),
    );
    bmc.resume();
    cell(
        "dead host, host_fence=none (hosts)",
        "inventory: h1 refuses SSH (its BMC reads on); the VM runs on h2",
        "live-vm",
        "none",
        Want::Fails("did not answer"),
    );
    // Reset the VM on h2 (the cell above powered it off before failing on h1).
    let vmid = sim
        .vms_on("h2")
        .iter()
        .find(|v| v["name"] == "live-vm")
        .and_then(|v| v["vmid"].as_u64())
        .expect("live-vm on h2");
    let on = sim.ssh_vim("h2", &format!("vmsvc/power.on {vmid}"));
    assert!(on.status.success(), "{on:?}");
    assert_eq!(sim.vm_power("h2", "live-vm").as_deref(), Some("on"));
    cell(
        "dead host, host_fence=bmc (hosts)",
        "inventory: h1 refuses SSH; powered off through its BMC; the VM runs on h2",
        "live-vm",
        "bmc",
        Want::Fences,
    );
}

/// A TCP port on 127.0.0.1 that nobody listens on (bound, then released).
fn closed_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// ---------------------------------------------------------------------------------------------
// fence_kvmguest: two simulated KVM hosts (tests/support/sim_kvm); guest11 runs on cfhost1,
// guest12 is shut off there, cfhost2 runs guest21.

fn kvm_cells() -> Vec<Cell> {
    let Some(k) = crate::kvmguest::two_hosts("faults") else {
        return Vec::new();
    };
    let quick = Limits {
        login: 4,
        shell: 2,
        power: 3,
        retry_on: 0,
    };
    let mut cells = Vec::new();
    let guest_off = |k: &crate::kvmguest::Kvm, guest: &str| {
        k.sim
            .where_is(guest)
            .iter()
            .all(|(_, s)| s == "shut off" || s == "absent")
    };
    // Runs `off` on `plug` (cfname; `guest` is its name for the read-back), clears the faults
    // of both hosts, records the cell and powers the guest back on if it went off.
    let mut cell = |k: &crate::kvmguest::Kvm,
                    fault: &'static str,
                    how: &str,
                    guest: &str,
                    limits: Limits,
                    extra: &[OwnedOpt],
                    creds: bool,
                    want: Want| {
        let mut opts: Vec<OwnedOpt> = limits
            .pairs()
            .iter()
            .map(|(n, v)| opt(n, None, Some(v)))
            .collect();
        opts.extend_from_slice(extra);
        let plug = format!("cf{guest}");
        let run = if creds {
            k.act(Mode::Long, "off", Some(&plug), &opts)
        } else {
            // Login options come from `extra` (wrong password).
            let mut all = k.common();
            all.push(opt("action", Some('o'), Some("off")));
            all.push(opt("plug", Some('n'), Some(&plug)));
            all.extend(opts);
            crate::kvmguest::run_opts(Mode::Long, &all)
        };
        for h in ["cfhost1", "cfhost2"] {
            k.sim.clear_faults(h);
            // The read-back below goes through libvirtd (never through ssh): thaw it first.
            k.sim.thaw(h, crate::kvmsim::Daemon::Libvirtd);
        }
        // A delayed destroy (slow fault) may still be pending: the read-back is the truth.
        let target_off = guest_off(k, guest);
        let c = Cell {
            agent: "fence_kvmguest",
            fault,
            how: how.to_owned(),
            want,
            bound: limits.bound(),
            run,
            target_off,
        };
        progress(&c);
        cells.push(c);
        if target_off && guest == "guest11" {
            let out = k.sim.virsh("cfhost1", &["start", "guest11"]);
            assert!(out.status.success(), "restart guest11: {out:?}");
        }
    };
    let dom = ("match", "dominfo");

    k.sim.fault("cfhost1", "hang", Some("120"), &[dom]);
    cell(
        &k,
        "hang",
        "`virsh dominfo` sleeps 120 s",
        "guest11",
        quick,
        &[],
        true,
        Want::Fails("did not finish within"),
    );
    k.sim.fault(
        "cfhost1",
        "drop",
        None,
        &[("match", "destroy"), ("mode", "before")],
    );
    cell(
        &k,
        "drop before the power-off",
        "the session's sshd is killed at every `virsh destroy`",
        "guest11",
        quick,
        &[],
        true,
        Want::Fails("connection lost"),
    );
    k.sim.fault(
        "cfhost1",
        "drop",
        None,
        &[("match", "destroy"), ("mode", "after"), ("times", "1")],
    );
    cell(
        &k,
        "drop after the power-off (answer lost)",
        "`virsh destroy` runs, then the sshd is killed",
        "guest11",
        quick,
        &[],
        true,
        Want::Fences,
    );
    k.sim.fault("cfhost1", "garble", Some("junk"), &[dom]);
    cell(
        &k,
        "garbage",
        "`virsh dominfo` prints junk",
        "guest11",
        quick,
        &[],
        true,
        Want::Fails("unrecognised virsh output"),
    );
    k.sim.fault(
        "cfhost1",
        "exit",
        Some("1"),
        &[dom, ("msg", "error: internal error: oops")],
    );
    cell(
        &k,
        "device error",
        "`virsh dominfo` exits 1 (`internal error: oops`)",
        "guest11",
        quick,
        &[],
        true,
        Want::Fails("internal error: oops"),
    );
    k.sim
        .fault("cfhost1", "noop", None, &[("match", "destroy")]);
    cell(
        &k,
        "ignored power-off",
        "`virsh destroy` says success, the guest keeps running",
        "guest11",
        quick,
        &[],
        true,
        Want::Fails("Timed out waiting to power OFF"),
    );
    k.sim.fault(
        "cfhost1",
        "slow",
        Some("2"),
        &[("mode", "async"), ("ops", "destroy")],
    );
    cell(
        &k,
        "slow transition",
        "the guest goes off 2 s after `virsh destroy` returned (power_timeout 20)",
        "guest11",
        Limits { power: 20, ..quick },
        &[],
        true,
        Want::Fences,
    );
    cell(
        &k,
        "wrong credentials",
        "a wrong password",
        "guest11",
        quick,
        &[opt("password", Some('p'), Some("wrong-Pw-4711"))],
        false,
        Want::Fails("did not accept the password"),
    );
    let empty = crate::kvmguest::write_conf(k.dir.path(), "known_hosts_empty", "", 0o600);
    cell(
        &k,
        "unknown host key",
        "known_hosts does not list the hosts",
        "guest11",
        quick,
        &[opt("known_hosts", None, Some(&empty.display().to_string()))],
        true,
        Want::Fails("is unknown"),
    );
    let swapped = swapped_known_hosts(&k);
    cell(
        &k,
        "changed host key",
        "known_hosts holds another host's keys for each address",
        "guest11",
        quick,
        &[opt(
            "known_hosts",
            None,
            Some(&swapped.display().to_string()),
        )],
        true,
        Want::Fails("does NOT match"),
    );
    k.sim.freeze("cfhost1", crate::kvmsim::Daemon::Libvirtd);
    cell(
        &k,
        "hypervisor hangs",
        "libvirtd is stopped (SIGSTOP): every virsh call hangs",
        "guest11",
        quick,
        &[],
        true,
        Want::Fails("did not finish within"),
    );
    k.sim.freeze("cfhost2", crate::kvmsim::Daemon::Sshd);
    cell(
        &k,
        "host stops answering",
        "cfhost2's sshd listener is stopped; guest12 is shut off on cfhost1",
        "guest12",
        quick,
        &[],
        true,
        Want::Fails("no SSH answer from"),
    );
    k.sim.thaw("cfhost2", crate::kvmsim::Daemon::Sshd);
    k.sim.sshd_down("cfhost2");
    cell(
        &k,
        "unreachable host",
        "cfhost2 refuses connections; guest12 is shut off on cfhost1",
        "guest12",
        quick,
        &[],
        true,
        Want::Fails("connection refused"),
    );
    k.sim.sshd_up("cfhost2");
    cells
}

/// A known_hosts file where each host's address carries the other host's keys.
fn swapped_known_hosts(k: &crate::kvmguest::Kvm) -> PathBuf {
    let text = std::fs::read_to_string(k.sim.known_hosts()).expect("known_hosts");
    let p1 = format!("[127.0.0.1]:{}", k.sim.host("cfhost1").port);
    let p2 = format!("[127.0.0.1]:{}", k.sim.host("cfhost2").port);
    let swapped: String = text
        .lines()
        .map(|l| {
            if l.starts_with(&p1) {
                l.replacen(&p1, &p2, 1)
            } else if l.starts_with(&p2) {
                l.replacen(&p2, &p1, 1)
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    crate::kvmguest::write_conf(k.dir.path(), "known_hosts_swapped", &swapped, 0o600)
}

// ---------------------------------------------------------------------------------------------
// fence_bmc: one OpenIPMI ipmi_sim BMC (tests/support/sim_ipmi), the lossy relay in front of
// it, and a UDP responder that answers junk.

fn bmc_cells() -> Vec<Cell> {
    let Some(bmc) = crate::bmc::sim(&[]) else {
        return Vec::new();
    };
    let quick = Limits {
        login: 3,
        shell: 3,
        power: 3,
        retry_on: 0,
    };
    let mut cells = Vec::new();
    let mut cell = |bmc: &Bmc,
                    fault: &'static str,
                    how: &str,
                    port: u16,
                    limits: Limits,
                    extra: &[String],
                    want: Want| {
        let mut lines: Vec<String> = limits
            .pairs()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        lines.extend_from_slice(extra);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let run = crate::bmc::stdin(&pcmk_stdin(port, "off", &refs));
        bmc.fault(&["clear"]);
        let target_off = bmc.power_file() == "0";
        let c = Cell {
            agent: "fence_bmc",
            fault,
            how: how.to_owned(),
            want,
            bound: limits.bound(),
            run,
            target_off,
        };
        progress(&c);
        cells.push(c);
        if target_off {
            bmc.set_power(true);
        }
    };
    let p = bmc.port;

    bmc.hang();
    cell(
        &bmc,
        "hang",
        "ipmi_sim is stopped (SIGSTOP)",
        p,
        quick,
        &[],
        Want::Fails("no IPMI answer"),
    );
    bmc.resume();
    // Login (4 datagrams) and the status read pass; the power-off never arrives.
    // Drops mid-session: a clean `status` through the relay sends the login, one Get Chassis
    // Status and Close Session (n datagrams); an `off` sends the same login, the status, then
    // the power-off. A relay that stops forwarding after n - 1 datagrams loses the power-off;
    // after n it lets the power-off through and loses everything after it (the read-back).
    match calibrate(&bmc) {
        Some(n) => {
            let Some(relay) =
                Relay::start(p, bmc.dir.path(), &["--die-after", &(n - 1).to_string()])
            else {
                return cells;
            };
            cell(
                &bmc,
                "drop before the power-off",
                &format!(
                    "the relay forwards the login and the status ({} datagrams), nothing after",
                    n - 1
                ),
                relay.port,
                quick,
                &[],
                Want::Fails("timed out"),
            );
            drop(relay);
            let Some(relay) = Relay::start(p, bmc.dir.path(), &["--die-after", &n.to_string()])
            else {
                return cells;
            };
            cell(
                &bmc,
                "drop after the power-off (answer lost)",
                "the relay forwards the power-off, then nothing: the off happens, it cannot be read back",
                relay.port,
                quick,
                &[],
                Want::Fails("timed out"),
            );
            drop(relay);
        }
        None => {
            let Some(relay) = Relay::start(p, bmc.dir.path(), &["--die-after", "2"]) else {
                return cells;
            };
            cell(
                &bmc,
                "drop during the login",
                "the relay forwards 2 datagrams, nothing after (no calibration run below 200 ms)",
                relay.port,
                quick,
                &[],
                Want::Fails("timed out"),
            );
            drop(relay);
        }
    }
    let junk = JunkBmc::start();
    cell(
        &bmc,
        "garbage",
        "a UDP responder answers every datagram with junk",
        junk.port,
        quick,
        &[],
        Want::Fails("no IPMI answer"),
    );
    drop(junk);
    bmc.fault(&["poweroff=error"]);
    cell(
        &bmc,
        "device error",
        "Chassis Control off answers completion code 0xFF",
        p,
        quick,
        &[],
        Want::Fails("completion code 0xff"),
    );
    bmc.fault(&["poweroff=ignore"]);
    cell(
        &bmc,
        "ignored power-off",
        "Chassis Control off is acknowledged, the power stays on",
        p,
        quick,
        &[],
        Want::Fails("Timed out waiting to power OFF"),
    );
    bmc.fault(&["delay=2"]);
    cell(
        &bmc,
        "slow transition",
        "the power goes off 2 s after the command (power_timeout 20)",
        p,
        Limits { power: 20, ..quick },
        &[],
        Want::Fences,
    );
    cell(
        &bmc,
        "wrong credentials",
        "a wrong password",
        p,
        quick,
        &["passwd=Not-The-Pw-42".to_owned()],
        Want::Fails("wrong password"),
    );
    cell(
        &bmc,
        "unreachable host",
        "nothing listens on the UDP port",
        closed_udp_port(),
        quick,
        &[],
        Want::Fails("no IPMI answer"),
    );
    // 30 % loss both ways: the login (about six exchanges, each resent with backoff) needs
    // more than a 3 s budget.
    let lossy = Limits { login: 20, ..quick };
    let Some(relay) = Relay::start(p, bmc.dir.path(), &["--drop", "0.3", "--seed", "11"]) else {
        return cells;
    };
    cell(
        &bmc,
        "30 % packet loss",
        "the relay drops 30 % of the datagrams both ways (login_timeout 20)",
        relay.port,
        lossy,
        &[],
        Want::Fences,
    );
    assert!(relay.log().contains("DROP"), "the relay dropped nothing");
    drop(relay);
    let Some(relay) = Relay::start(
        p,
        bmc.dir.path(),
        &["--dup", "0.5", "--delay", "0.3:400", "--seed", "5"],
    ) else {
        return cells;
    };
    cell(
        &bmc,
        "duplicated and delayed replies",
        "the relay duplicates 50 % and delays 30 % (up to 400 ms) of the replies",
        relay.port,
        lossy,
        &[],
        Want::Fences,
    );
    let log = relay.log();
    assert!(log.contains("DUP") && log.contains("DELAY"), "{log}");
    drop(relay);
    cells
}

/// Client datagrams of a clean `status` run through a relay (login + status + close), from a
/// run fast enough to hold no resend (the first resend comes after 250 ms); `None` when no run
/// of 10 was that fast.
fn calibrate(bmc: &Bmc) -> Option<usize> {
    for _ in 0..10 {
        let probe = Relay::start(bmc.port, bmc.dir.path(), &[])?;
        let r = crate::bmc::stdin(&pcmk_stdin(probe.port, "status", &[]));
        assert_eq!(r.code, 0, "calibration status run: {r:?}");
        if r.elapsed < Duration::from_millis(200) {
            return Some(probe.log().lines().filter(|l| l.contains(" c2s ")).count());
        }
    }
    None
}

/// A UDP port on 127.0.0.1 that nobody listens on (bound, then released).
fn closed_udp_port() -> u16 {
    crate::ipmisim::free_port()
}

/// A "BMC" that answers every datagram with junk: alternately an RMCP header followed by
/// noise, and noise alone.
struct JunkBmc {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JunkBmc {
    fn start() -> JunkBmc {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut x: u32 = 0x2545_f491;
            let mut n = 0u32;
            while !flag.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                n += 1;
                let mut reply: Vec<u8> = if n % 2 == 1 {
                    vec![6, 0, 0xff, 7]
                } else {
                    Vec::new()
                };
                for _ in 0..len.max(16) {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    reply.push(x.to_le_bytes()[0]);
                }
                let _ = sock.send_to(&reply, from);
            }
        });
        JunkBmc {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for JunkBmc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Faults that do not apply to an agent's transport, listed in the report for completeness.
const NOT_APPLICABLE: &[(&str, &str, &str)] = &[
    (
        "fence_esxi",
        "packet loss / duplication",
        "TCP (SSH): the kernel retransmits; a lost connection is the `drop` rows",
    ),
    (
        "fence_kvmguest",
        "packet loss / duplication",
        "TCP (SSH): the kernel retransmits; a lost connection is the `drop` rows",
    ),
    (
        "fence_bmc",
        "unknown / changed host key",
        "IPMI has no host key; a wrong Kg is refused like a wrong password (tests/bmc.rs)",
    ),
];

fn report(cells: &[Cell], wall: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Reliability: the fault matrix\n");
    let _ = writeln!(
        s,
        "Generated by `tests/faults.rs` (`FENCEKIT_WRITE_REPORTS=1 FENCE_REQUIRE_SIMULATORS=1 \
         cargo test --locked --test integration faults::`); do not edit by hand. Every agent is the \
         real binary, every device a simulator on loopback (see README.md), every cell one fence \
         (`-o off`, stdin or long options). The test asserts each row; this file only records it.\n"
    );
    let _ = writeln!(
        s,
        "- **exit**: 1 for every fault the device does not survive, 0 only when the simulator \
         itself shows the target off afterwards (no false success).\n\
         - **time / bound**: wall time of the run against the agent's whole-action budget for the \
         options passed (`login_timeout + 2·shell_timeout + (1 + retry_on)·(2·shell_timeout + \
         power_wait + power_timeout) + 5 s`, the watchdog's sum in `src/protocol/run.rs`); the \
         test allows the bound plus max(10 s, bound/2) on this shared machine. It proves the \
         agent never hangs; it is not a speed test.\n\
         - **target after**: the simulator's reading of the target after the run.\n"
    );
    let _ = writeln!(
        s,
        "Machine: {} CPUs (shared with other jobs), the matrix took {:.0} s of wall time with the \
         three agents in parallel.\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        wall.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| agent | fault | injected as | expected | exit | time | bound | target after | what the agent said | verdict |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for c in cells {
        let want = match c.want {
            Want::Fails(n) => format!("exit 1, `{n}`"),
            Want::Fences => "exit 0, off".to_owned(),
        };
        let problems = c.problems();
        let verdict = if problems.is_empty() {
            "ok".to_owned()
        } else {
            format!("**{}**", problems.join("; "))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.1} s | {} s | {} | `{}` | {} |",
            c.agent,
            c.fault,
            c.how,
            want,
            c.run.code,
            c.run.elapsed.as_secs_f64(),
            c.bound.as_secs(),
            if c.target_off { "off" } else { "on" },
            c.said(),
            verdict
        );
    }
    let _ = writeln!(s, "\nNot applicable:\n");
    for (agent, fault, why) in NOT_APPLICABLE {
        let _ = writeln!(s, "- {agent}, {fault}: {why}.");
    }
    s
}

fn report_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RELIABILITY.md")
}

#[test]
fn fault_matrix() {
    let t0 = Instant::now();
    let groups: Vec<Vec<Cell>> = std::thread::scope(|sc| {
        let hs = vec![
            sc.spawn(esxi_cells),
            sc.spawn(bmc_cells),
            sc.spawn(kvm_cells),
        ];
        hs.into_iter()
            .map(|h| h.join().expect("a fault group panicked"))
            .collect()
    });
    let wall = t0.elapsed();
    let cells: Vec<Cell> = groups.into_iter().flatten().collect();
    let agents: Vec<&str> = {
        let mut a: Vec<&str> = cells.iter().map(|c| c.agent).collect();
        a.dedup();
        a
    };
    if std::env::var("FENCEKIT_WRITE_REPORTS").is_ok_and(|v| v == "1") {
        assert_eq!(agents.len(), 3, "a report needs every agent's simulator");
        std::fs::write(report_path(), report(&cells, wall)).expect("write bench/RELIABILITY.md");
        println!("wrote {}", report_path().display());
    }
    let bad: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            let p = c.problems();
            (!p.is_empty()).then(|| format!("{}\n  => {}", show(c), p.join("; ")))
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}
