//! Hostile input against the protocol layer, through the real binaries (issue 8): oversized
//! stdin, an empty action, FIFOs and devices named as files, a password script that leaves
//! children behind, SIGTERM/SIGINT during a hung action (with the IPMI session closed on the
//! BMC), and values that try to forge log lines. Every child run here is bounded: a hang is a
//! test failure, not a hung test.

use std::fs;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::agentcmd;
use crate::ipmi17::Bmc17;

/// What a bounded run produced.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Starts `cmd` with piped stdio; `input` is written from a thread (a write error, as when
/// the agent refuses input and exits before reading it all, is not the test's concern).
fn spawn(mut cmd: Command, input: Option<Vec<u8>>) -> Child {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn agent");
    if let (Some(bytes), Some(mut si)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = si.write_all(&bytes);
        });
    }
    child
}

/// Waits for `child` at most `limit` (then kills it: `code` is `None`), collecting its output.
fn finish(mut child: Child, started: Instant, limit: Duration) -> Out {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st.code().unwrap_or(-1));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Out {
        code,
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        elapsed,
    }
}

fn run(cmd: Command, input: Option<Vec<u8>>, limit: Duration) -> Out {
    let started = Instant::now();
    finish(spawn(cmd, input), started, limit)
}

fn fake() -> PathBuf {
    agentcmd::bin("fence_fake")
}

/// A fence_fake device: plugs node1 and node10, both on.
struct Dev {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Dev {
    fn new(content: &str) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::write(&state, content).unwrap();
        Dev { dir, state }
    }
    fn path(&self) -> &str {
        self.state.to_str().unwrap()
    }
    fn text(&self) -> String {
        fs::read_to_string(&self.state).unwrap()
    }
    fn log(&self) -> String {
        fs::read_to_string(format!("{}.log", self.path())).unwrap_or_default()
    }
}

const TWO_ON: &str = "plug node1 on\nplug node10 on\n";
const CAP: usize = fencekit::protocol::stdin::MAX_STDIN;

/// Every stderr line is one log line (`YYYY-MM-DD HH:MM:SS,mmm LEVEL: ...`), and no byte of
/// stderr is an escape or carriage return.
fn assert_one_line_per_message(stderr: &str) {
    assert!(!stderr.contains('\u{1b}'), "ESC on stderr: {stderr:?}");
    assert!(!stderr.contains('\r'), "CR on stderr: {stderr:?}");
    for line in stderr.lines() {
        let level = line.get(24..).unwrap_or("");
        let ok = line.len() > 24
            && line.as_bytes()[4] == b'-'
            && line.as_bytes()[19] == b','
            && (level.starts_with("ERROR: ")
                || level.starts_with("WARNING: ")
                || level.starts_with("DEBUG: "));
        assert!(
            ok,
            "a stderr line that is not a log line: {line:?}\n{stderr}"
        );
    }
}

#[test]
fn hostile_oversized_stdin_is_refused_never_cut() {
    let d = Dev::new(TWO_ON);
    // Cut at the cap, this input would say `plug=node1` (node1 is on: it would be fenced).
    let head = format!("action=off\nstate_file={}\n", d.path());
    let target = "plug=node10\n";
    let pad = CAP - head.len() - "plug=node1".len() - 1;
    let text = format!("{head}{}\n{target}", "#".repeat(pad));
    assert_eq!(text.find("plug=node10").unwrap() + "plug=node1".len(), CAP);
    let r = run(
        Command::new(fake()),
        Some(text.into_bytes()),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("Failed: stdin larger than {CAP} bytes")),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("Success"), "{}", r.stdout);
    assert_eq!(d.text(), TWO_ON, "nothing was fenced");
    assert_eq!(d.log(), "", "the device was never contacted");

    // A lost `action=status` line must not leave the default reboot in force.
    let head = format!("plug=node1\nstate_file={}\n", d.path());
    let text = format!("{head}{}\naction=status\n", "#".repeat(CAP));
    let r = run(
        Command::new(fake()),
        Some(text.into_bytes()),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("stdin larger than"), "{}", r.stderr);
    assert!(!r.stdout.contains("Rebooted"), "{}", r.stdout);
    assert_eq!(d.text(), TWO_ON);
    assert_eq!(d.log(), "");

    // An overlong line is refused too, not skipped.
    let text = format!(
        "plug=node1\nstate_file={}\naction={}\n",
        d.path(),
        "x".repeat(fencekit::protocol::stdin::MAX_LINE + 1)
    );
    let r = run(
        Command::new(fake()),
        Some(text.into_bytes()),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("stdin line 3 larger than"),
        "{}",
        r.stderr
    );
    assert_eq!(d.text(), TWO_ON);

    // Exactly the cap (comment lines of 1000 bytes) is accepted.
    let mut text = format!("action=status\nplug=node1\nstate_file={}\n", d.path());
    while text.len() < CAP {
        let n = (CAP - text.len()).min(1000);
        text.push_str(&"#".repeat(n - 1));
        text.push('\n');
    }
    assert_eq!(text.len(), CAP);
    let r = run(
        Command::new(fake()),
        Some(text.into_bytes()),
        Duration::from_secs(20),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "Status: ON\n"),
        "{r:?}"
    );
}

#[test]
fn hostile_empty_action_is_a_usage_error_never_a_reboot() {
    let d = Dev::new(TWO_ON);
    let stdin_text = format!(
        "action=status\naction=\nplug=node1\nstate_file={}\n",
        d.path()
    );
    let mut runs = vec![run(
        Command::new(fake()),
        Some(stdin_text.into_bytes()),
        Duration::from_secs(20),
    )];
    for argv in [
        vec!["-o", "", "-n", "node1", "--state-file", d.path()],
        vec!["--action=", "-n", "node1", "--state-file", d.path()],
        vec![
            "-o",
            "status",
            "-o",
            "",
            "-n",
            "node1",
            "--state-file",
            d.path(),
        ],
    ] {
        let mut c = Command::new(fake());
        c.args(&argv);
        runs.push(run(c, None, Duration::from_secs(20)));
    }
    for r in runs {
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(
            r.stderr.contains("Failed: Unrecognised action ''"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "", "never 'Success: Rebooted'");
    }
    assert_eq!(d.text(), TWO_ON);
    assert_eq!(d.log(), "", "the device was never contacted");
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success());
}

#[test]
fn hostile_debug_file_fifo_does_not_hang() {
    let d = Dev::new(TWO_ON);
    let fifo = d.dir.path().join("debug.fifo");
    mkfifo(&fifo);
    let mut c = Command::new(fake());
    c.args(["-o", "status", "-n", "node1", "--state-file", d.path()]);
    c.args(["--debug-file", fifo.to_str().unwrap()]);
    let r = run(c, None, Duration::from_secs(20));
    assert_eq!(r.code, Some(1), "finished in time, exit 1: {r:?}");
    assert!(r.elapsed < Duration::from_secs(5), "{r:?}");
    assert!(
        r.stderr.contains("Failed: Unable to create file"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
}

#[test]
fn hostile_known_hosts_fifo_or_device_is_refused_quickly() {
    // Nothing listens on this port: the file is read before any connection.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("kh.fifo");
    mkfifo(&fifo);
    for kh in [Path::new("/dev/zero"), fifo.as_path()] {
        let mut c = Command::new(agentcmd::bin("fence_esxi"));
        c.args(["-o", "status", "-a", "127.0.0.1", "-u", &port]);
        c.args(["-l", "root", "-p", "pw", "-n", "vm1"]);
        c.args([
            "--login-timeout",
            "2",
            "--known-hosts",
            kh.to_str().unwrap(),
        ]);
        let r = run(c, None, Duration::from_secs(30));
        assert_eq!(r.code, Some(1), "finished in time, exit 1: {r:?}");
        assert!(r.elapsed < Duration::from_secs(5), "{r:?}");
        eprintln!("known_hosts={}: refused in {:?}", kh.display(), r.elapsed);
        assert!(
            r.stderr
                .contains(&format!("known_hosts {}: not a regular file", kh.display())),
            "{}",
            r.stderr
        );
    }
}

/// PIDs of processes whose command line holds `marker`.
fn pids_with(marker: &str) -> Vec<i32> {
    let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Asserts that no process carries `marker` (within a second: SIGKILL is delivered at once,
/// exiting takes a moment); kills leftovers by PID before failing.
fn assert_none_alive(marker: &str) {
    let until = Instant::now() + Duration::from_secs(1);
    let mut left = pids_with(marker);
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        left = pids_with(marker);
    }
    for p in &left {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    assert!(
        left.is_empty(),
        "descendants of the password script survive: {left:?}"
    );
}

#[test]
fn hostile_password_script_children_die_with_it() {
    agentcmd::require("pgrep");
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    // The marker is in the child script's file name, so `pgrep -f` finds it; `; true` keeps
    // the shell from exec'ing sleep (which would lose the marker).
    let marker = format!("fencekit-h8-marker-{}", std::process::id());
    let child_script = dir.path().join(format!("{marker}.sh"));
    fs::write(
        &child_script,
        format!("echo up >> {}\nsleep 300\ntrue\n", started.display()),
    )
    .unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let child = child_script.display().to_string();
    // 1. A script that prints the password at once but leaves two children running.
    // 2. A script that never finishes (killed at its 10 s limit), with a child.
    let scripts = [
        format!("sh {child} >/dev/null 2>&1 & sh {child} >/dev/null 2>&1 & sleep 0.3; echo pw"),
        format!("sh {child} & sleep 300; true"),
    ];
    for (i, script) in scripts.iter().enumerate() {
        let mut c = Command::new(agentcmd::bin("fence_bmc"));
        c.args([
            "-o",
            "status",
            "-a",
            "127.0.0.1",
            "-u",
            &port,
            "-l",
            "admin",
        ]);
        c.args(["--login-timeout", "1", "-S", script]);
        let r = run(c, None, Duration::from_secs(40));
        assert_eq!(r.code, Some(1), "{r:?}");
        if i == 1 {
            assert!(
                r.stderr.contains("Failed: Password script timed out"),
                "{}",
                r.stderr
            );
        }
        let ups = fs::read_to_string(&started).unwrap_or_default();
        assert_eq!(
            ups.lines().count(),
            if i == 0 { 2 } else { 3 },
            "children started"
        );
        assert_none_alive(&marker);
    }
}

/// Waits until `cond` holds (at most `limit`).
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn hostile_sigterm_and_sigint_end_a_hung_action_with_a_failed_line() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let d = Dev::new("plug node1 on\nfault hang-hard\n");
        let text = format!("action=off\nplug=node1\nstate_file={}\n", d.path());
        let start = Instant::now();
        let child = spawn(Command::new(fake()), Some(text.into_bytes()));
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        // Connected (the fake logs each invocation at connect), then hung for an hour.
        assert!(wait_for(Duration::from_secs(10), || !d.log().is_empty()));
        std::thread::sleep(Duration::from_millis(300));
        let sent = Instant::now();
        kill(pid, sig).unwrap();
        let r = finish(child, start, Duration::from_secs(20));
        let after = sent.elapsed();
        eprintln!("{sig}: exit {after:?} after the signal");
        assert_eq!(r.code, Some(1), "{sig}: {r:?}");
        assert!(
            after < Duration::from_secs(3),
            "{sig}: exit {after:?} after the signal"
        );
        assert!(
            r.stderr.contains(&format!(
                "Failed: Interrupted by {} before the action finished",
                sig.as_str()
            )),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
        assert_one_line_per_message(&r.stderr);
        assert!(d.text().contains("plug node1 on"));
    }
}

/// A UDP relay in front of a BMC that forwards everything until the client's second
/// authenticated session message (after the login: Set Session Privilege Level is the first),
/// then keeps forwarding the client's datagrams but drops every answer: the agent hangs
/// waiting for its chassis command while the BMC still hears everything it sends.
struct HangingRelay {
    port: u16,
    session_msgs: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HangingRelay {
    fn start(bmc_port: u16) -> HangingRelay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", bmc_port)).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let port = front.local_addr().unwrap().port();
        let session_msgs = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::new(std::sync::Mutex::new(None));
        {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (msgs, stop, client) = (session_msgs.clone(), stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    let pkt = &buf[..n];
                    // RMCP+ (auth type 6), payload type IPMI message, non-zero session ID.
                    if n > 10 && pkt[4] == 0x06 && pkt[5] & 0x3f == 0 && pkt[6..10] != [0; 4] {
                        msgs.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = back.send(pkt);
                }
            });
        }
        {
            let (msgs, stop) = (session_msgs.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = back.recv(&mut buf) else {
                        continue;
                    };
                    let to = *client.lock().unwrap();
                    if let Some(to) = to.filter(|_| msgs.load(Ordering::SeqCst) < 2) {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            });
        }
        HangingRelay {
            port,
            session_msgs,
            stop,
        }
    }
}

impl Drop for HangingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn hostile_sigterm_closes_the_ipmi_session_on_the_bmc() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let bmc = Bmc17::start(&[("admin", "secret", 4)], None, &[3, 17]);
        let relay = HangingRelay::start(bmc.port);
        let port = relay.port.to_string();
        let mut c = Command::new(agentcmd::bin("fence_bmc"));
        c.args(["-o", "status", "-a", "127.0.0.1", "-u", &port]);
        c.args(["-l", "admin", "-p", "secret", "--login-timeout", "20"]);
        let start = Instant::now();
        let child = spawn(c, None);
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        // Logged in, privilege raised, and now waiting for an answer that never comes.
        assert!(
            wait_for(Duration::from_secs(15), || relay
                .session_msgs
                .load(Ordering::SeqCst)
                >= 2),
            "the agent never got past the login"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            bmc.state.lock().unwrap().open_sessions,
            1,
            "one session open"
        );
        let sent = Instant::now();
        kill(pid, sig).unwrap();
        let r = finish(child, start, Duration::from_secs(30));
        let after = sent.elapsed();
        eprintln!("{sig}: exit {after:?} after the signal");
        assert_eq!(r.code, Some(1), "{sig}: {r:?}");
        assert!(
            after < Duration::from_secs(3),
            "{sig}: exit {after:?} after the signal"
        );
        assert!(
            r.stderr
                .contains(&format!("Failed: Interrupted by {}", sig.as_str())),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
        // The Close Session reached the BMC, authenticated with the session's keys.
        assert!(
            wait_for(Duration::from_secs(2), || bmc
                .state
                .lock()
                .unwrap()
                .open_sessions
                == 0),
            "{sig}: the session was left open on the BMC"
        );
    }
}

#[test]
fn hostile_values_cannot_forge_log_lines() {
    let d = Dev::new(TWO_ON);
    let forged_plug = "node9\nSuccess: Rebooted\u{1b}[2J\rnode1";
    let forged_action = "bogus\u{1b}[31m\nSuccess: Rebooted";
    let mut runs = Vec::new();
    let mut c = Command::new(fake());
    c.args(["-o", "off", "-n", forged_plug, "--state-file", d.path()]);
    runs.push(("plug", run(c, None, Duration::from_secs(20))));
    let mut c = Command::new(fake());
    c.args(["-o", forged_action, "-n", "node1", "--state-file", d.path()]);
    runs.push(("action", run(c, None, Duration::from_secs(20))));
    // Stdin cannot carry a line break inside a value, but it can carry ESC.
    let text = format!(
        "action=bogus\u{1b}[2J\u{1b}]0;owned\u{7}\nplug=node1\u{1b}[1A\nstate_file={}\n",
        d.path()
    );
    runs.push((
        "stdin",
        run(
            Command::new(fake()),
            Some(text.into_bytes()),
            Duration::from_secs(20),
        ),
    ));
    for (what, r) in &runs {
        assert_eq!(r.code, Some(1), "{what}: {r:?}");
        assert_eq!(r.stdout, "", "{what}");
        assert_one_line_per_message(&r.stderr);
        let failed: Vec<&str> = r.stderr.lines().filter(|l| l.contains("Failed:")).collect();
        assert_eq!(failed.len(), 1, "{what}: {}", r.stderr);
        assert!(
            !r.stderr.lines().any(|l| l.contains(": Success")),
            "{what}: {}",
            r.stderr
        );
    }
    assert!(
        runs[0]
            .1
            .stderr
            .contains("node9\\nSuccess: Rebooted\\e[2J\\rnode1"),
        "{}",
        runs[0].1.stderr
    );
    assert!(
        runs[1]
            .1
            .stderr
            .contains("Failed: Unrecognised action 'bogus\\e[31m\\nSuccess: Rebooted'"),
        "{}",
        runs[1].1.stderr
    );
    assert_eq!(d.text(), TWO_ON);
}
