//! fence_kvmguest, the real binary, against simulated KVM hosts (real sshd + real virsh +
//! libvirtd test driver, `tests/support/sim_kvm/`): every action in the three input modes, plugs by
//! guest-cfname and guest-name, fencing where the guest really runs after a migration, hosts
//! that cannot be asked (never OFF), kvmguests.conf errors and permissions, login variants,
//! faults, and quoting of what reaches the remote shell.
//!
//! No timed assertions: elapsed times are only checked against bounds far above the
//! configured timeouts (a hung device would otherwise hang the test).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agentcmd::{self, Mode, Run, MODES};
use crate::kvmsim::{Daemon, GuestSpec, KvmSim};

fn bin() -> PathBuf {
    agentcmd::bin("fence_kvmguest")
}

/// Writes a kvmguests.conf with the given mode.
pub(crate) fn write_conf(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// One option for [`agentcmd::run_mode`], owned: (stdin name, short, long, value).
pub(crate) type OwnedOpt = (String, Option<char>, String, Option<String>);

pub(crate) fn opt(name: &str, short: Option<char>, value: Option<&str>) -> OwnedOpt {
    (
        name.to_owned(),
        short,
        name.replace('_', "-"),
        value.map(str::to_owned),
    )
}

/// Simulated hosts + a private map file and the options that reach them.
pub(crate) struct Kvm {
    pub(crate) sim: KvmSim,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) conf: PathBuf,
}

impl Kvm {
    /// Starts `hosts` (in parallel) and writes a 0600 map of `(guest, mapped host)` pairs.
    fn new(tag: &str, hosts: &[(&str, Vec<GuestSpec<'_>>)], map: &[(&str, &str)]) -> Option<Kvm> {
        let mut sim = KvmSim::new(tag)?;
        sim.start_hosts(hosts);
        let dir = tempfile::tempdir().unwrap();
        let conf = write_conf(
            dir.path(),
            "kvmguests.conf",
            &KvmSim::kvmguests_conf(map),
            0o600,
        );
        Some(Kvm { sim, dir, conf })
    }

    /// Options without credentials: map, hosts, user, known_hosts, fast polling.
    pub(crate) fn common(&self) -> Vec<OwnedOpt> {
        vec![
            opt("guests_conf", None, Some(&self.conf.display().to_string())),
            opt("hosts", None, Some(&self.sim.hosts_option())),
            opt("username", Some('l'), Some(&self.sim.user())),
            opt(
                "known_hosts",
                None,
                Some(&self.sim.known_hosts().display().to_string()),
            ),
            opt("stonith_status_sleep", None, Some("0.2")),
            opt("login_timeout", None, Some("10")),
            opt("shell_timeout", None, Some("10")),
        ]
    }

    /// Common options + key login.
    fn base(&self) -> Vec<OwnedOpt> {
        let mut v = self.common();
        v.push(opt(
            "identity_file",
            Some('k'),
            Some(&self.sim.client_key().display().to_string()),
        ));
        v
    }

    /// Runs base options + `extra` in `mode`.
    fn run(&self, mode: Mode, extra: &[OwnedOpt]) -> Run {
        let mut all = self.base();
        all.extend_from_slice(extra);
        run_opts(mode, &all)
    }

    /// Runs `action` (+ plug) in `mode` with key login.
    pub(crate) fn act(
        &self,
        mode: Mode,
        action: &str,
        plug: Option<&str>,
        extra: &[OwnedOpt],
    ) -> Run {
        let mut all = vec![opt("action", Some('o'), Some(action))];
        if let Some(p) = plug {
            all.push(opt("plug", Some('n'), Some(p)));
        }
        all.extend_from_slice(extra);
        self.run(mode, &all)
    }

    pub(crate) fn state(&self, host: &str, guest: &str) -> Option<String> {
        self.sim.domstate(host, guest)
    }
}

pub(crate) fn run_opts(mode: Mode, all: &[OwnedOpt]) -> Run {
    let refs: Vec<agentcmd::Opt<'_>> = all
        .iter()
        .map(|(n, s, l, v)| (n.as_str(), *s, l.as_str(), v.as_deref()))
        .collect();
    agentcmd::run_mode(&bin(), mode, &refs)
}

fn show(r: &Run) -> String {
    format!(
        "code={} elapsed={:?}\n--- stdout\n{}--- stderr\n{}",
        r.code, r.elapsed, r.stdout, r.stderr
    )
}

/// Success: exit 0, expected stdout, empty stderr.
fn assert_ok(r: &Run, stdout: &str) {
    assert_eq!(r.code, 0, "{}", show(r));
    assert_eq!(r.stdout, stdout, "{}", show(r));
    assert_eq!(r.stderr, "", "{}", show(r));
    assert!(!r.stdout.contains("guest-secret"), "{}", show(r));
}

/// A failure: exit 1, never a status or a success line on stdout.
fn assert_failed(r: &Run) {
    assert_eq!(r.code, 1, "{}", show(r));
    assert!(!r.stdout.contains("Status: OFF"), "{}", show(r));
    assert!(!r.stdout.contains("Success"), "{}", show(r));
    assert!(r.stderr.contains("Failed"), "{}", show(r));
    // The map's guest passwords (guest-secret-N) never reach any output.
    assert!(!r.stderr.contains("guest-secret"), "{}", show(r));
}

/// Lines of the lifecycle event log of `host` that concern `guest`.
fn events_of(k: &Kvm, host: &str, guest: &str) -> Vec<String> {
    let needle = format!("for domain '{guest}': ");
    k.sim
        .events(host)
        .lines()
        .filter(|l| l.contains(&needle))
        .map(|l| l.split_once(&needle).map_or("", |x| x.1).to_owned())
        .collect()
}

/// Calls of `host`'s virsh wrapper that name a subcommand (`virsh destroy guest11` ...).
fn calls_with(k: &Kvm, host: &str, what: &str) -> usize {
    k.sim
        .calls(host)
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

pub(crate) fn two_hosts(tag: &str) -> Option<Kvm> {
    Kvm::new(
        tag,
        &[
            ("cfhost1", vec![("guest11", true), ("guest12", false)]),
            ("cfhost2", vec![("guest21", true)]),
        ],
        &[
            ("guest11", "cfhost1"),
            ("guest12", "cfhost1"),
            ("guest21", "cfhost2"),
        ],
    )
}

#[test]
fn kvmguest_actions_in_three_modes() {
    let Some(k) = two_hosts("modes") else {
        return;
    };
    for mode in MODES {
        // status by guest-cfname and by guest-name.
        assert_ok(
            &k.act(mode, "status", Some("cfguest11"), &[]),
            "Status: ON\n",
        );
        assert_ok(&k.act(mode, "status", Some("guest21"), &[]), "Status: ON\n");
        let r = k.act(mode, "status", Some("cfguest12"), &[]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (2, "Status: OFF\n"),
            "{}",
            show(&r)
        );
        assert_eq!(r.stderr, "", "{}", show(&r));
        let r = k.act(mode, "status", Some("guest12"), &[]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (2, "Status: OFF\n"),
            "{}",
            show(&r)
        );

        // list: guest-cfname,guest-name for every map entry; list-status adds the state.
        assert_ok(
            &k.act(mode, "list", None, &[]),
            "cfguest11,guest11\ncfguest12,guest12\ncfguest21,guest21\n",
        );
        assert_ok(
            &k.act(mode, "list-status", None, &[]),
            "cfguest11,guest11,ON\ncfguest12,guest12,OFF\ncfguest21,guest21,ON\n",
        );
        assert_ok(&k.act(mode, "monitor", None, &[]), "");
        assert_ok(&k.act(mode, "validate-all", Some("cfguest11"), &[]), "");

        // off / on by cfname, confirmed by the backdoor.
        assert_ok(
            &k.act(mode, "off", Some("cfguest11"), &[]),
            "Success: Powered OFF\n",
        );
        assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("shut off"));
        assert_ok(
            &k.act(mode, "off", Some("guest11"), &[]),
            "Success: Already OFF\n",
        );
        assert_ok(
            &k.act(mode, "on", Some("guest11"), &[]),
            "Success: Powered ON\n",
        );
        assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("running"));
        assert_ok(
            &k.act(mode, "on", Some("cfguest11"), &[]),
            "Success: Already ON\n",
        );

        // reboot by guest-name: destroyed, then started, on the same host.
        let before = events_of(&k, "cfhost2", "guest21").len();
        assert_ok(
            &k.act(mode, "reboot", Some("guest21"), &[]),
            "Success: Rebooted\n",
        );
        let ev = events_of(&k, "cfhost2", "guest21");
        assert_eq!(
            ev.get(before..).unwrap_or_default(),
            ["Stopped Destroyed", "Started Booted"],
            "{ev:?}"
        );
        assert_eq!(k.state("cfhost2", "guest21").as_deref(), Some("running"));

        // reboot of a guest that is off: it is just started.
        assert_ok(
            &k.act(mode, "reboot", Some("cfguest12"), &[]),
            "Success: Rebooted\n",
        );
        assert_eq!(k.state("cfhost1", "guest12").as_deref(), Some("running"));
        assert_ok(
            &k.act(mode, "off", Some("cfguest12"), &[]),
            "Success: Powered OFF\n",
        );
    }
    // Pacemaker's way: stdin with the legacy names (port=, login=), no argv at all.
    let text = format!(
        "action=status\nport=cfguest11\nlogin={}\nidentity_file={}\nguests_conf={}\nhosts={}\nknown_hosts={}\n",
        k.sim.user(),
        k.sim.client_key().display(),
        k.conf.display(),
        k.sim.hosts_option(),
        k.sim.known_hosts().display()
    );
    assert_ok(&agentcmd::stdin(&bin(), &text), "Status: ON\n");
    // A plug that is not in the map: error, no host is asked for it.
    let r = k.act(Mode::Long, "status", Some("cfguest99"), &[]);
    assert_failed(&r);
    assert!(r.stderr.contains("not in the guests map"), "{}", show(&r));
    assert_eq!(calls_with(&k, "cfhost1", "cfguest99"), 0);
}

#[test]
fn kvmguest_fences_the_guest_where_it_runs_after_migration() {
    let Some(k) = Kvm::new(
        "migr",
        &[
            ("cfhost1", vec![("guest11", true), ("guest12", true)]),
            ("cfhost2", vec![("guest21", true)]),
            ("cfhost3", vec![]),
            ("cfspare", vec![]),
        ],
        &[
            ("guest11", "cfhost1"),
            ("guest12", "cfhost1"),
            ("guest21", "cfhost2"),
            ("guest31", "cfhost3"),
        ],
    ) else {
        return;
    };
    // Moved away from its mapped host (the map is now stale): ON, found on cfhost3.
    k.sim.migrate("cfhost1", "cfhost3", "guest11", false);
    assert_ok(
        &k.act(Mode::Long, "status", Some("cfguest11"), &[]),
        "Status: ON\n",
    );
    assert_ok(
        &k.act(Mode::Stdin, "off", Some("cfguest11"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(k.state("cfhost3", "guest11").as_deref(), Some("shut off"));
    assert_eq!(
        events_of(&k, "cfhost3", "guest11")
            .last()
            .map(String::as_str),
        Some("Stopped Destroyed")
    );
    assert_eq!(calls_with(&k, "cfhost1", "destroy"), 0);
    assert_eq!(calls_with(&k, "cfhost2", "destroy"), 0);
    // On: only cfhost3 has it defined, so it starts there.
    assert_ok(
        &k.act(Mode::Short, "on", Some("guest11"), &[]),
        "Success: Powered ON\n",
    );
    let mut w = k.sim.where_is("guest11");
    w.sort();
    assert_eq!(
        w,
        [
            ("cfhost1".to_owned(), "absent".to_owned()),
            ("cfhost2".to_owned(), "absent".to_owned()),
            ("cfhost3".to_owned(), "running".to_owned()),
            ("cfspare".to_owned(), "absent".to_owned())
        ]
    );

    // The trap: still defined (shut off) on the mapped host, running on another one.
    // reboot = destroy where it runs (cfhost2), then start on the mapped host (cfhost1).
    k.sim.migrate("cfhost1", "cfhost2", "guest12", true);
    assert_eq!(k.state("cfhost1", "guest12").as_deref(), Some("shut off"));
    assert_ok(
        &k.act(Mode::Long, "status", Some("cfguest12"), &[]),
        "Status: ON\n",
    );
    let before1 = events_of(&k, "cfhost1", "guest12").len();
    assert_ok(
        &k.act(Mode::Long, "reboot", Some("cfguest12"), &[]),
        "Success: Rebooted\n",
    );
    assert_eq!(
        events_of(&k, "cfhost2", "guest12")
            .last()
            .map(String::as_str),
        Some("Stopped Destroyed")
    );
    assert_eq!(
        events_of(&k, "cfhost1", "guest12")
            .get(before1..)
            .unwrap_or_default(),
        ["Started Booted"]
    );
    assert_eq!(k.state("cfhost1", "guest12").as_deref(), Some("running"));
    assert_eq!(k.state("cfhost2", "guest12").as_deref(), Some("shut off"));
    assert_eq!(calls_with(&k, "cfhost1", "destroy guest12"), 0);
    assert_eq!(calls_with(&k, "cfhost2", "start guest12"), 0);

    // Running twice (split brain after a botched migration): off destroys it on both hosts.
    k.sim.define("cfhost3", "guest21", true);
    assert_ok(
        &k.act(Mode::Long, "off", Some("cfguest21"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(k.state("cfhost2", "guest21").as_deref(), Some("shut off"));
    assert_eq!(k.state("cfhost3", "guest21").as_deref(), Some("shut off"));

    // A spare host named only in the `hosts` option (no guest mapped to it): a guest that
    // migrated there is found (ON, even with missing_as_off) and destroyed there.
    k.sim.migrate("cfhost3", "cfspare", "guest11", false);
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest11"),
        &[opt("missing_as_off", None, None)],
    );
    assert_ok(&r, "Status: ON\n");
    assert_ok(
        &k.act(Mode::Long, "off", Some("cfguest11"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(k.state("cfspare", "guest11").as_deref(), Some("shut off"));
    assert_eq!(
        events_of(&k, "cfspare", "guest11")
            .last()
            .map(String::as_str),
        Some("Stopped Destroyed")
    );

    // In the map, defined nowhere: an error, or OFF with missing_as_off.
    let r = k.act(Mode::Long, "status", Some("cfguest31"), &[]);
    assert_failed(&r);
    assert!(r.stderr.contains("not defined on any host"), "{}", show(&r));
    for mode in MODES {
        let r = k.act(
            mode,
            "status",
            Some("cfguest31"),
            &[opt("missing_as_off", None, None)],
        );
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (2, "Status: OFF\n"),
            "{}",
            show(&r)
        );
        assert_eq!(r.stderr, "", "{}", show(&r));
    }
    assert_ok(
        &k.act(
            Mode::Long,
            "off",
            Some("cfguest31"),
            &[opt("missing_as_off", None, None)],
        ),
        "Success: Already OFF\n",
    );
    // missing_as_off never hides a host that did not answer.
    k.sim.sshd_down("cfhost2");
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest31"),
        &[opt("missing_as_off", None, None)],
    );
    assert_failed(&r);
    assert!(r.stderr.contains("cfhost2"), "{}", show(&r));
    k.sim.sshd_up("cfhost2");
}

#[test]
fn kvmguest_unreachable_host_is_never_off() {
    let Some(k) = two_hosts("unreach") else {
        return;
    };
    let short = [
        opt("login_timeout", None, Some("2")),
        opt("shell_timeout", None, Some("2")),
        opt("power_timeout", None, Some("3")),
    ];
    // guest12 is shut off on its mapped host; cfhost2 could be running it.
    k.sim.freeze("cfhost2", Daemon::Sshd);
    for (action, plug) in [("status", "cfguest12"), ("off", "guest12")] {
        let r = k.act(Mode::Long, action, Some(plug), &short);
        assert_failed(&r);
        assert!(r.stderr.contains("cfhost2"), "{}", show(&r));
        assert!(!r.stdout.contains("Already OFF"), "{}", show(&r));
        assert!(r.elapsed < Duration::from_secs(60), "{}", show(&r));
    }
    // A guest seen running elsewhere is ON even so.
    assert_ok(
        &k.act(Mode::Long, "status", Some("cfguest11"), &short),
        "Status: ON\n",
    );
    let r = k.act(Mode::Long, "monitor", None, &short);
    assert_failed(&r);
    let r = k.act(Mode::Long, "list-status", None, &short);
    assert_eq!(
        r.stdout,
        "cfguest11,guest11,ON\ncfguest12,guest12,UNKNOWN\ncfguest21,guest21,UNKNOWN\n",
        "{}",
        show(&r)
    );
    k.sim.thaw("cfhost2", Daemon::Sshd);

    // Connection refused.
    k.sim.sshd_down("cfhost2");
    for mode in MODES {
        let r = k.act(mode, "status", Some("guest12"), &short);
        assert_failed(&r);
        assert!(r.stderr.contains("cfhost2"), "{}", show(&r));
    }
    k.sim.sshd_up("cfhost2");

    // virsh hangs on cfhost2 (frozen libvirtd): shell_timeout, error.
    k.sim.freeze("cfhost2", Daemon::Libvirtd);
    let r = k.act(Mode::Long, "status", Some("cfguest12"), &short);
    k.sim.thaw("cfhost2", Daemon::Libvirtd);
    assert_failed(&r);
    assert!(r.elapsed < Duration::from_secs(60), "{}", show(&r));

    // Back to normal: now it may say OFF.
    let r = k.act(Mode::Long, "status", Some("cfguest12"), &short);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (2, "Status: OFF\n"),
        "{}",
        show(&r)
    );
}

/// virsh prints `failed to get domain` for any failed lookup, not only for an undefined
/// domain. On the host that runs the guest such an answer must not count as "not here",
/// or a stale shut-off copy elsewhere would make the guest look OFF.
#[test]
fn kvmguest_failed_lookup_is_not_absence() {
    let Some(k) = two_hosts("lookup") else {
        return;
    };
    // guest12: stale shut-off copy on its mapped host cfhost1, running on cfhost2.
    k.sim.define("cfhost2", "guest12", true);
    let lookup_fails = [
        ("match", "dominfo"),
        ("msg", "error: failed to get domain 'guest12'"),
    ];
    k.sim.fault("cfhost2", "exit", Some("1"), &lookup_fails);
    let t = [
        opt("shell_timeout", None, Some("3")),
        opt("power_timeout", None, Some("4")),
    ];
    for (action, extra) in [
        ("status", None),
        ("status", Some(opt("missing_as_off", None, None))),
        ("off", None),
    ] {
        let mut o = t.to_vec();
        o.extend(extra);
        let r = k.act(Mode::Long, action, Some("cfguest12"), &o);
        assert_failed(&r);
        assert!(r.stderr.contains("yet lists it"), "{}", show(&r));
    }
    assert!(
        k.sim
            .where_is("guest12")
            .contains(&("cfhost2".to_owned(), "running".to_owned())),
        "{:?}",
        k.sim.where_is("guest12")
    );
    // Without the fault the lookup answers, and the guest is ON where it runs.
    k.sim.clear_faults("cfhost2");
    assert_ok(
        &k.act(Mode::Long, "status", Some("cfguest12"), &t),
        "Status: ON\n",
    );
    // A guest that is really absent from a host is still "not there" (listing confirms it).
    let r = k.act(Mode::Long, "status", Some("cfguest21"), &t);
    assert_ok(&r, "Status: ON\n");
}

#[test]
fn kvmguest_faults_end_in_exit_1() {
    let Some(k) = two_hosts("faults") else {
        return;
    };
    let t = [
        opt("shell_timeout", None, Some("2")),
        opt("power_timeout", None, Some("3")),
        opt("retry_on", None, Some("0")),
    ];
    let dom = ("match", "dominfo");
    // guest12 is defined (shut off) on both hosts, so both answer with a state.
    k.sim.define("cfhost2", "guest12", false);

    // virsh hangs: shell_timeout.
    k.sim.fault("cfhost1", "hang", Some("120"), &[dom]);
    let r = k.act(Mode::Long, "status", Some("cfguest11"), &t);
    k.sim.clear_faults("cfhost1");
    assert_failed(&r);
    assert!(r.stderr.contains("timed out"), "{}", show(&r));
    assert!(r.elapsed < Duration::from_secs(60), "{}", show(&r));

    // Garbled domstate, on the mapped host or on another one, for a guest that is off.
    for (host, how) in [
        ("cfhost1", "junk"),
        ("cfhost1", "truncate"),
        ("cfhost1", "binary"),
        ("cfhost2", "junk"),
        ("cfhost2", "binary"),
    ] {
        k.sim.fault(host, "garble", Some(how), &[dom]);
        let r = k.act(Mode::Long, "status", Some("cfguest12"), &t);
        k.sim.clear_faults(host);
        assert_failed(&r);
        let r2 = k.act(Mode::Long, "status", Some("cfguest12"), &t);
        assert_eq!(r2.code, 2, "{}", show(&r2));
    }
    // An error virsh did not explain.
    k.sim.fault(
        "cfhost2",
        "exit",
        Some("1"),
        &[dom, ("msg", "error: internal error: oops")],
    );
    let r = k.act(Mode::Long, "status", Some("cfguest12"), &t);
    k.sim.clear_faults("cfhost2");
    assert_failed(&r);
    assert!(r.stderr.contains("internal error: oops"), "{}", show(&r));
    // Hostile stderr (issue 8 item 9): escape sequences, a forged success line, a 100 KB
    // line: quoted only as a short excerpt with control characters blanked.
    let long = format!("error: {}", "A".repeat(100_000));
    for msg in [
        "error: first\\nSuccess: Powered OFF\\nerror: \\033[2J\\033]0;owned\\007boom",
        "\\033[31mno error prefix\\nSuccess: Powered OFF",
        long.as_str(),
    ] {
        k.sim
            .fault("cfhost2", "exit", Some("1"), &[dom, ("msg", msg)]);
        let r = k.act(Mode::Long, "status", Some("cfguest12"), &t);
        k.sim.clear_faults("cfhost2");
        assert_failed(&r);
        assert!(
            !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}'),
            "{}",
            show(&r)
        );
        assert!(
            !r.stderr.lines().any(|l| l.starts_with("Success")),
            "{}",
            show(&r)
        );
        assert!(r.stderr.lines().all(|l| l.len() < 2000), "{}", show(&r));
    }

    // destroy is ignored (success text, nothing changes): timed out, guest still running.
    k.sim
        .fault("cfhost1", "noop", None, &[("match", "destroy")]);
    for action in ["off", "reboot"] {
        let r = k.act(Mode::Long, action, Some("cfguest11"), &t);
        assert_failed(&r);
        assert!(
            r.stderr.contains("Timed out waiting to power OFF"),
            "{}",
            show(&r)
        );
        assert!(r.elapsed < Duration::from_secs(60), "{}", show(&r));
        assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("running"));
    }
    k.sim.clear_faults("cfhost1");

    // destroy hangs: the command times out, the off is never confirmed.
    k.sim
        .fault("cfhost1", "hang", Some("120"), &[("match", "destroy")]);
    let r = k.act(Mode::Long, "off", Some("cfguest11"), &t);
    k.sim.clear_faults("cfhost1");
    assert_failed(&r);
    assert!(r.elapsed < Duration::from_secs(60), "{}", show(&r));
    assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("running"));

    // The connection drops on every destroy before it runs: never confirmed, exit 1.
    k.sim.fault(
        "cfhost1",
        "drop",
        None,
        &[("match", "destroy"), ("mode", "before")],
    );
    let r = k.act(Mode::Long, "off", Some("cfguest11"), &t);
    k.sim.clear_faults("cfhost1");
    assert_failed(&r);
    assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("running"));
    // The connection drops on status.
    k.sim
        .fault("cfhost1", "drop", None, &[dom, ("mode", "before")]);
    let r = k.act(Mode::Long, "status", Some("cfguest11"), &t);
    k.sim.clear_faults("cfhost1");
    assert_failed(&r);
    assert!(r.stderr.contains("onnection"), "{}", show(&r));
    // Destroy done but the answer lost: the read-back (new connection) confirms it.
    k.sim.fault(
        "cfhost1",
        "drop",
        None,
        &[("match", "destroy"), ("mode", "after"), ("times", "1")],
    );
    let r = k.act(Mode::Long, "off", Some("cfguest11"), &t);
    k.sim.clear_faults("cfhost1");
    assert_ok(&r, "Success: Powered OFF\n");
    assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("shut off"));
    // Destroy completes 2 s late: the agent waits for the read-back.
    assert_ok(
        &k.act(Mode::Long, "on", Some("cfguest11"), &t),
        "Success: Powered ON\n",
    );
    k.sim.fault(
        "cfhost1",
        "slow",
        Some("2"),
        &[("mode", "async"), ("ops", "destroy")],
    );
    let r = k.act(
        Mode::Long,
        "off",
        Some("cfguest11"),
        &[opt("power_timeout", None, Some("20"))],
    );
    k.sim.clear_faults("cfhost1");
    assert_ok(&r, "Success: Powered OFF\n");
    assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("shut off"));
}

#[test]
fn kvmguest_logins_sudo_uri_and_host_keys() {
    let Some(k) = two_hosts("login") else {
        return;
    };
    let pw = k.sim.password();
    // Password login, all three modes (also with -v): no password in any output.
    for mode in MODES {
        let mut o = k.common();
        o.push(opt("password", Some('p'), Some(&pw)));
        o.push(opt("action", Some('o'), Some("status")));
        o.push(opt("plug", Some('n'), Some("cfguest11")));
        let r = run_opts(mode, &o);
        assert_ok(&r, "Status: ON\n");
        o.push(opt("verbose", Some('v'), None));
        let r = run_opts(mode, &o);
        assert_eq!(r.code, 0, "{}", show(&r));
        assert!(
            !r.stdout.contains(&pw) && !r.stderr.contains(&pw),
            "{}",
            show(&r)
        );
    }
    // A wrong password: login refused, exit 1, neither password echoed.
    let mut o = k.common();
    o.push(opt("password", Some('p'), Some("wrong-Pw-4711")));
    o.push(opt("action", Some('o'), Some("status")));
    o.push(opt("plug", Some('n'), Some("cfguest12")));
    let r = run_opts(Mode::Stdin, &o);
    assert_failed(&r);
    assert!(!r.stderr.contains("wrong-Pw-4711"), "{}", show(&r));

    // use_sudo: every virsh goes through sudo -n; a refusing sudo is an error.
    for mode in MODES {
        let before = calls_with(&k, "cfhost1", "sudo -n virsh");
        assert_ok(
            &k.act(
                mode,
                "status",
                Some("cfguest11"),
                &[opt("use_sudo", None, None)],
            ),
            "Status: ON\n",
        );
        assert!(calls_with(&k, "cfhost1", "sudo -n virsh") > before);
    }
    k.sim.fault("cfhost1", "sudo_denied", None, &[]);
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest11"),
        &[opt("use_sudo", None, None)],
    );
    k.sim.clear_faults("cfhost1");
    assert_failed(&r);
    assert!(r.stderr.contains("sudo"), "{}", show(&r));

    // libvirt_uri: the simulator maps any qemu URI to its daemon; another URI fails.
    assert_ok(
        &k.act(
            Mode::Long,
            "status",
            Some("cfguest11"),
            &[opt("libvirt_uri", None, Some("qemu:///session"))],
        ),
        "Status: ON\n",
    );
    let r = k.act(
        Mode::Stdin,
        "status",
        Some("cfguest11"),
        &[opt("libvirt_uri", None, Some("test:///nosuchfile"))],
    );
    assert_failed(&r);

    // Unknown host key: refused before any command runs, with a hint.
    let empty = write_conf(k.dir.path(), "known_hosts_empty", "", 0o600);
    let calls = k.sim.calls("cfhost1").lines().count();
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest11"),
        &[opt("known_hosts", None, Some(&empty.display().to_string()))],
    );
    assert_failed(&r);
    assert!(
        r.stderr.contains("Host key verification failed"),
        "{}",
        show(&r)
    );
    assert_eq!(k.sim.calls("cfhost1").lines().count(), calls);
    // A known_hosts with another host's key for this address: refused too.
    let text = std::fs::read_to_string(k.sim.known_hosts()).unwrap();
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
    let swapped = write_conf(k.dir.path(), "known_hosts_swapped", &swapped, 0o600);
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest11"),
        &[opt(
            "known_hosts",
            None,
            Some(&swapped.display().to_string()),
        )],
    );
    assert_failed(&r);
    assert!(r.stderr.contains("Host key"), "{}", show(&r));
}

#[test]
fn kvmguest_names_reach_the_shell_quoted() {
    let Some(k) = Kvm::new(
        "quote",
        &[("cfhost1", vec![("guest11", true), ("-dash", true)])],
        &[("guest11", "cfhost1"), ("-dash", "cfhost1")],
    ) else {
        return;
    };
    // The exact command line, from the debug log: URI and domain single-quoted, after `--`.
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest11"),
        &[opt("verbose", Some('v'), None)],
    );
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(
        r.stderr
            .contains("executing env LC_ALL=C virsh -c 'qemu:///system' dominfo -- 'guest11'"),
        "{}",
        show(&r)
    );
    // A guest-name starting with '-' reaches virsh as the domain, not as an option.
    assert_ok(
        &k.act(Mode::Long, "off", Some("-dash"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(k.state("cfhost1", "-dash").as_deref(), Some("shut off"));
    let calls = k.sim.calls("cfhost1");
    assert!(
        calls
            .lines()
            .any(|l| l.contains("rc=0") && l.ends_with("virsh destroy -dash")),
        "{calls}"
    );
    // Shell metacharacters in a plug: not in the map, no host contacted.
    let marker = format!("/tmp/fkv-pwned-{}", std::process::id());
    let evil = format!("x';touch {marker};'");
    let n = k.sim.calls("cfhost1").lines().count();
    let r = k.act(Mode::Stdin, "off", Some(&evil), &[]);
    assert_failed(&r);
    assert_eq!(k.sim.calls("cfhost1").lines().count(), n);
    // ...and in libvirt_uri (quoted, passed to virsh as one argument).
    let uri = format!("qemu:///system';touch {marker};'");
    let r = k.act(
        Mode::Long,
        "status",
        Some("cfguest11"),
        &[opt("libvirt_uri", None, Some(&uri))],
    );
    assert!(r.code == 0 || r.code == 1, "{}", show(&r));
    assert!(!Path::new(&marker).exists(), "shell injection ran");
}

#[test]
fn kvmguest_conf_permissions() {
    let Some(k) = two_hosts("perm") else {
        return;
    };
    let text = std::fs::read_to_string(&k.conf).unwrap();
    let open = write_conf(k.dir.path(), "open.conf", &text, 0o644);
    let o = |path: &Path| opt("guests_conf", None, Some(&path.display().to_string()));
    for mode in MODES {
        for action in ["status", "validate-all"] {
            let r = k.act(mode, action, Some("cfguest11"), &[o(&open)]);
            assert_eq!(r.code, 1, "{}", show(&r));
            assert_eq!(r.stdout, "", "{}", show(&r));
            assert!(
                r.stderr
                    .contains("mode 0644 is accessible by group or others"),
                "{}",
                show(&r)
            );
        }
        // Relaxed: works, with a warning.
        let relax = opt("relax_conf_permissions", None, None);
        let r = k.act(
            mode,
            "status",
            Some("cfguest11"),
            &[o(&open), relax.clone()],
        );
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "Status: ON\n"),
            "{}",
            show(&r)
        );
        let warn = format!("WARNING: {}: mode 0644", open.display());
        assert!(r.stderr.contains(&warn), "{}", show(&r));
        assert!(r.stderr.contains("0644"), "{}", show(&r));
        let r = k.act(mode, "validate-all", Some("cfguest11"), &[o(&open), relax]);
        assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", show(&r));
        // Sound apart from the relaxed mode: exit 0, but not silent about what it let through.
        assert!(r.stderr.contains(&warn), "{}", show(&r));
    }
    // 0400 is fine; a missing file is an error.
    let ro = write_conf(k.dir.path(), "ro.conf", &text, 0o400);
    assert_ok(
        &k.act(Mode::Long, "status", Some("cfguest11"), &[o(&ro)]),
        "Status: ON\n",
    );
    let r = k.act(
        Mode::Long,
        "validate-all",
        Some("cfguest11"),
        &[o(&k.dir.path().join("missing.conf"))],
    );
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(r.stderr.contains("missing.conf"), "{}", show(&r));
}

/// validate-all needs no device: runs without simulators (and without root).
#[test]
fn kvmguest_validate_all_reports_every_conf_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = "# kvmguests.conf\n\
        \n\
        guest11 cfhost1 cluster1 cfguest11 10.20.30.50 user1 D0860AB04E1B8FA3\n\
        \t# indented comment\n\
        guest12\tcfhost2  cluster1 cfguest12 2001:db8::12 user1 s3cr3t+/=\n";
    let run = |mode: Mode, path: &Path| {
        let p = path.display().to_string();
        run_opts(
            mode,
            &[
                opt("action", Some('o'), Some("validate-all")),
                opt("plug", Some('n'), Some("cfguest11")),
                opt("guests_conf", None, Some(&p)),
                opt("username", Some('l'), Some("root")),
                opt("password", Some('p'), Some("Xyzzy-pw-12")),
            ],
        )
    };
    let sound = write_conf(dir.path(), "good.conf", good, 0o600);
    for mode in MODES {
        assert_ok(&run(mode, &sound), "");
    }
    // One file per error kind: (line to append after the good lines, expected text).
    let cases: &[(&str, &str)] = &[
        (
            "guest13 cfhost1 cluster1 cfguest13 10.0.0.13 user1\n",
            "expected 7 fields",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest13 10.0.0.13 user1 pw extra\n",
            "found 8",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest13 10.0.0.300 user1 pw\n",
            "guest_IP (column 5) is not an IPv4 or IPv6 address",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest13 host13 user1 pw\n",
            "guest_IP (column 5) is not an IPv4 or IPv6 address",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest13 fe80::13 user1 pw\n",
            "guest_IP 'fe80::13' is IPv6 link-local",
        ),
        (
            "guest11 cfhost1 cluster1 cfguest13 10.0.0.13 user1 pw\n",
            "duplicate guest-name 'guest11' (first on line 3)",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest12 10.0.0.13 user1 pw\n",
            "duplicate guest-cfname 'cfguest12' (first on line 5)",
        ),
        (
            "guest$13 cfhost1 cluster1 cfguest13 10.0.0.13 user1 pw\n",
            "invalid character '$' in guest-name",
        ),
        (
            "guest13 cf;host1 cluster1 cfguest13 10.0.0.13 user1 pw\n",
            "invalid character ';' in host-cfname",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest13 10.0.0.13 us'er pw\n",
            "invalid character '\\'' in guest_user",
        ),
        (
            "guest13 cfhost1 cluster1 cfguest13 10.0.0.13 user1 pw\r\n",
            "carriage return",
        ),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let p = write_conf(
            dir.path(),
            &format!("bad{i}.conf"),
            &format!("{good}{line}"),
            0o600,
        );
        for mode in MODES {
            let r = run(mode, &p);
            assert_eq!(r.code, 1, "{line:?}: {}", show(&r));
            assert_eq!(r.stdout, "", "{}", show(&r));
            let prefix = format!("{}: line 6: ", p.display());
            assert!(
                r.stderr
                    .lines()
                    .any(|l| l.contains(&prefix) && l.contains(want)),
                "{prefix}...{want} not in {}",
                show(&r)
            );
            assert!(r.stderr.contains("validate-all failed"), "{}", show(&r));
            assert!(!r.stderr.contains("Xyzzy-pw-12"), "{}", show(&r));
        }
    }
    // Everything at once: every problem is printed, each with its own line number.
    let all: String = cases.iter().map(|(l, _)| *l).collect();
    let p = write_conf(dir.path(), "all.conf", &format!("{good}{all}"), 0o600);
    let r = run(Mode::Long, &p);
    assert_eq!(r.code, 1, "{}", show(&r));
    for (i, (_, want)) in cases.iter().enumerate() {
        let prefix = format!("line {}: ", i + 6);
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains(&prefix) && l.contains(want)),
            "{prefix}...{want} not in {}",
            show(&r)
        );
    }
    // The guest password column never shows up in an error.
    let p = write_conf(
        dir.path(),
        "pw.conf",
        &format!("{good}guest13 cfhost1 cluster1 cfguest13 10.0.0.300 user1 Sekr1t-Pw\n"),
        0o600,
    );
    let r = run(Mode::Stdin, &p);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(!r.stderr.contains("Sekr1t-Pw"), "{}", show(&r));
    // An empty map.
    let p = write_conf(dir.path(), "empty.conf", "# nothing\n", 0o600);
    let r = run(Mode::Long, &p);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(r.stderr.contains("no guest entries"), "{}", show(&r));
}

/// validate-all / status with a hostile or unsafe guests_conf, no device needed: a sparse
/// 2 GiB file is refused at once (not read), a FIFO does not hang, a password swapped into
/// another column is never quoted, and a map someone else could replace (owner, directory
/// writable by others) is refused unless relaxed, with a warning.
#[test]
fn kvmguest_conf_hostile_files_are_refused() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let good = "guest11 cfhost1 cluster1 cfguest11 10.20.30.50 user1 D0860AB04E1B8FA3\n";
    let cmd = |path: &Path, action: &str, extra: &[&str]| {
        let mut c = Command::new(bin());
        c.args([
            "-o",
            action,
            "-n",
            "cfguest11",
            "-l",
            "root",
            "-p",
            "Xyzzy-pw-12",
        ])
        .arg(format!("--guests-conf={}", path.display()))
        .args(extra)
        .stdin(std::process::Stdio::null());
        c
    };
    let limit = Duration::from_secs(20);
    let run = |path: &Path, extra: &[&str]| {
        crate::kvmsim::run_limited(cmd(path, "validate-all", extra), limit)
    };

    // A sparse 2 GiB map: refused by its size, quickly (the child is killed at the limit).
    let big = dir.path().join("big.conf");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = run(&big, &[]);
    assert!(
        !r.timed_out,
        "validate-all of a 2 GiB map did not end: {}",
        r.err()
    );
    assert_eq!(r.exit(), Some(1), "{}", r.err());
    assert!(
        r.err().contains("larger than 16777216 bytes"),
        "{}",
        r.err()
    );
    let r = crate::kvmsim::run_limited(cmd(&big, "status", &[]), limit);
    assert!(!r.timed_out && r.exit() == Some(1), "{}", r.err());
    assert!(
        r.err().contains("larger than 16777216 bytes"),
        "{}",
        r.err()
    );

    // A FIFO: refused, never waited on.
    let fifo = dir.path().join("fifo.conf");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    let r = run(&fifo, &[]);
    assert!(!r.timed_out && r.exit() == Some(1), "{}", r.err());
    assert!(r.err().contains("not a regular file"), "{}", r.err());

    // Mis-ordered lines: the password (plain or hex-encrypted) never shows up.
    for line in [
        "guest13 cfhost1 cluster1 cfguest13 Sekr1t-Pw user1 10.0.0.13\n",
        "guest13 cfhost1 cluster1 cfguest13 Sekr1t-Pw 10.0.0.13\n",
        "0b1cbc9e94d64f0fa1f00123456789ab cfhost1 cluster1 cfguest13 10.0.0.13 user1 g13\n",
    ] {
        let p = write_conf(dir.path(), "swapped.conf", &format!("{good}{line}"), 0o600);
        let r = run(&p, &[]);
        assert_eq!(r.exit(), Some(1), "{line}: {}", r.err());
        assert!(r.err().contains("line 2: "), "{}", r.err());
        assert!(!r.err().contains("Sekr1t-Pw"), "{}", r.err());
        assert!(!r.err().contains("0b1cbc9e94d64f0fa1f0"), "{}", r.err());
        assert!(r.out().is_empty(), "{}", r.out());
    }

    // A private map in a private directory: fine. In a sticky /tmp-like directory: fine.
    let p = write_conf(dir.path(), "ok.conf", good, 0o600);
    let r = run(&p, &[]);
    assert_eq!((r.exit(), r.err().as_str()), (Some(0), ""), "{}", r.err());
    let sticky = dir.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let p = write_conf(&sticky, "kvmguests.conf", good, 0o600);
    let r = run(&p, &[]);
    assert_eq!((r.exit(), r.err().as_str()), (Some(0), ""), "{}", r.err());

    // A directory anyone may write (not sticky): the map could be replaced.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = write_conf(&open, "kvmguests.conf", good, 0o600);
    let r = run(&p, &[]);
    assert_eq!(r.exit(), Some(1), "{}", r.err());
    let want = format!(
        "directory {}: mode 0777 is writable by group or others",
        open.display()
    );
    assert!(r.err().contains(&want), "{}", r.err());
    // Relaxed: accepted, with the same text as a warning.
    let r = run(&p, &["--relax-conf-permissions"]);
    assert_eq!(r.exit(), Some(0), "{}", r.err());
    assert!(r.err().contains(&format!("WARNING: {want}")), "{}", r.err());
    // A symbolic link in a private directory to the map in the open one: still refused.
    let link = dir.path().join("link.conf");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let r = run(&link, &[]);
    assert_eq!(r.exit(), Some(1), "{}", r.err());
    assert!(r.err().contains(&want), "{}", r.err());

    // Owned by another user (root only can give a file away).
    if nix::unistd::geteuid().is_root() {
        let p = write_conf(dir.path(), "theirs.conf", good, 0o600);
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let r = run(&p, &[]);
        assert_eq!(r.exit(), Some(1), "{}", r.err());
        assert!(
            r.err().contains("owned by uid 65534, not by root"),
            "{}",
            r.err()
        );
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let p = write_conf(&theirs, "kvmguests.conf", good, 0o600);
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let r = run(&p, &[]);
        assert_eq!(r.exit(), Some(1), "{}", r.err());
        let want = format!("directory {}: owned by uid 65534", theirs.display());
        assert!(r.err().contains(&want), "{}", r.err());
    }
}

/// Issue 8 item 4: a guest with a managed-save image or a crashed guest is not off. `off`
/// discards the image (`managedsave-remove`) or destroys the crashed domain and reads it back
/// as shut off without an image; `on` and `reboot` boot fresh (`start --force-boot`), never
/// resume the saved memory; where the image cannot be discarded, the off fails and says why.
#[test]
fn kvmguest_saved_and_crashed_guests_are_not_off() {
    let Some(k) = two_hosts("saved") else {
        return;
    };
    let m = Mode::Long;
    let managed_save = |g: &str| -> String {
        let out = k.sim.virsh("cfhost1", &["dominfo", "--", g]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Managed save:").map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let reason = |h: &str, g: &str| {
        let out = k.sim.virsh(h, &["domstate", "--reason", "--", g]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let save = |g: &str| {
        assert!(k.sim.virsh("cfhost1", &["managedsave", g]).status.success());
        assert_eq!(managed_save(g), "yes");
    };

    // Saved: not off for status; off discards the image and reads it back.
    save("guest11");
    assert_ok(&k.act(m, "status", Some("cfguest11"), &[]), "Status: ON\n");
    assert_ok(
        &k.act(m, "list-status", None, &[]),
        "cfguest11,guest11,ON\ncfguest12,guest12,OFF\ncfguest21,guest21,ON\n",
    );
    assert_ok(
        &k.act(m, "off", Some("cfguest11"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(managed_save("guest11"), "no");
    assert_eq!(k.state("cfhost1", "guest11").as_deref(), Some("shut off"));
    assert_eq!(
        calls_with(&k, "cfhost1", "virsh managedsave-remove guest11"),
        1
    );
    assert_eq!(calls_with(&k, "cfhost1", "virsh destroy guest11"), 0);
    // on after the fence: a fresh boot.
    let before = events_of(&k, "cfhost1", "guest11").len();
    assert_ok(
        &k.act(m, "on", Some("cfguest11"), &[]),
        "Success: Powered ON\n",
    );
    assert_eq!(reason("cfhost1", "guest11"), "running (booted)");
    assert_eq!(
        events_of(&k, "cfhost1", "guest11")
            .get(before..)
            .unwrap_or_default(),
        ["Started Booted"]
    );
    assert!(calls_with(&k, "cfhost1", "virsh start --force-boot guest11") >= 1);

    // reboot of a saved guest: image discarded, booted fresh, never restored.
    save("guest11");
    let before = events_of(&k, "cfhost1", "guest11").len();
    assert_ok(
        &k.act(m, "reboot", Some("guest11"), &[]),
        "Success: Rebooted\n",
    );
    assert_eq!(reason("cfhost1", "guest11"), "running (booted)");
    assert_eq!(managed_save("guest11"), "no");
    assert_eq!(
        events_of(&k, "cfhost1", "guest11")
            .get(before..)
            .unwrap_or_default(),
        ["Started Booted"]
    );

    // on of a saved guest (not fenced before): boots fresh too, never "Already ON".
    save("guest11");
    let before = events_of(&k, "cfhost1", "guest11").len();
    assert_ok(
        &k.act(m, "on", Some("cfguest11"), &[]),
        "Success: Powered ON\n",
    );
    assert_eq!(reason("cfhost1", "guest11"), "running (booted)");
    assert_eq!(
        events_of(&k, "cfhost1", "guest11")
            .get(before..)
            .unwrap_or_default(),
        ["Started Booted"]
    );
    assert_eq!(managed_save("guest11"), "no");

    // The image cannot be discarded: the off fails and says why; the image is still there.
    save("guest11");
    let msg = "error: Failed to remove managed save image for domain 'guest11'\\n\
               error: Failed to remove managed save file '/var/lib/libvirt/qemu/save/guest11.save': Permission denied";
    k.sim.fault(
        "cfhost1",
        "exit",
        Some("1"),
        &[("match", "managedsave-remove"), ("msg", msg)],
    );
    let r = k.act(
        m,
        "off",
        Some("cfguest11"),
        &[opt("power_timeout", None, Some("2"))],
    );
    assert_failed(&r);
    assert!(
        r.stderr
            .contains("cannot discard the managed-save image of 'guest11'"),
        "{}",
        show(&r)
    );
    assert!(r.stderr.contains("Permission denied"), "{}", show(&r));
    assert!(
        r.stderr.contains("Timed out waiting to power OFF"),
        "{}",
        show(&r)
    );
    assert!(r.elapsed < Duration::from_secs(60), "{}", show(&r));
    assert_eq!(managed_save("guest11"), "yes");
    k.sim.clear_faults("cfhost1");
    assert_ok(
        &k.act(m, "off", Some("cfguest11"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(managed_save("guest11"), "no");

    // Crashed (qemu alive, on_crash=preserve): ON until destroyed; off destroys it.
    k.sim.crash("cfhost2", "guest21");
    assert_ok(&k.act(m, "status", Some("cfguest21"), &[]), "Status: ON\n");
    assert_ok(
        &k.act(m, "off", Some("cfguest21"), &[]),
        "Success: Powered OFF\n",
    );
    assert_eq!(reason("cfhost2", "guest21"), "shut off (destroyed)");
    assert_eq!(calls_with(&k, "cfhost2", "virsh destroy guest21"), 1);
    let r = k.act(m, "status", Some("cfguest21"), &[]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (2, "Status: OFF\n"),
        "{}",
        show(&r)
    );
    // A crashed guest rebooted: destroyed, then booted fresh.
    assert_ok(
        &k.act(m, "on", Some("cfguest21"), &[]),
        "Success: Powered ON\n",
    );
    k.sim.crash("cfhost2", "guest21");
    let before = events_of(&k, "cfhost2", "guest21").len();
    assert_ok(
        &k.act(m, "reboot", Some("cfguest21"), &[]),
        "Success: Rebooted\n",
    );
    assert_eq!(
        events_of(&k, "cfhost2", "guest21")
            .get(before..)
            .unwrap_or_default(),
        ["Stopped Destroyed", "Started Booted"]
    );
}
