//! Issue 8 item 11: forged RMCP+ login replies. A hostile relay sits between the client and
//! the suite-17 responder (tests/support/ipmi17.rs) and, before each genuine Open Session
//! Response or RAKP 2 it forwards, sends a forged copy with an error status and a console session ID that
//! is not ours (what an attacker on the network, or a confused second BMC, can send).
//!
//! A forged error must never abort the login: the genuine reply that follows still logs in.
//! With only forged replies the login fails at its deadline with a login error (exit 1 through
//! the real `fence_bmc` binary), never a false OFF: the chassis stays on.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fencekit::transport::ipmi::{IpmiConfig, IpmiError, Session};
use fencekit::{PowerState, Secret};

use crate::agentcmd;
use crate::ipmi17::Bmc17;

const PW: &str = "Sp00f-Zq7-secret";

/// RMCP+ payload types of the replies the relay forges.
const PT_OPEN_RSP: u8 = 0x11;
const PT_RAKP2: u8 = 0x13;

/// What the relay does with a genuine reply of a forged type.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// Forged error first, then the genuine reply.
    SpoofThenGenuine,
    /// Forged error only; the genuine reply is dropped.
    SpoofOnly,
    /// Forged error without any console session ID (as ipmi_sim words its own Open Session
    /// errors), then the genuine reply.
    NoIdThenGenuine,
}

/// A UDP relay client <-> BMC that forges errors before replies of type `forge`.
struct SpoofRelay {
    port: u16,
    forged: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The forged copy of a genuine sessionless RMCP+ reply: same tag, error `status`, a console
/// session ID that is not the client's.
fn forge(genuine: &[u8], status: u8, with_id: bool) -> Option<Vec<u8>> {
    // RMCP (4) + auth type, payload type, session ID 0 (4), sequence (4), length (2).
    let payload = genuine.get(16..)?;
    let tag = *payload.first()?;
    let console = u32::from_le_bytes(payload.get(4..8)?.try_into().ok()?);
    let mut p = vec![tag, status];
    if with_id {
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&(console ^ 0xdead_beef).to_le_bytes());
    }
    let mut out = genuine.get(..14)?.to_vec();
    out.extend_from_slice(&(p.len() as u16).to_le_bytes());
    out.extend_from_slice(&p);
    Some(out)
}

impl SpoofRelay {
    fn start(bmc_port: u16, forge_types: &[u8], mode: Mode) -> SpoofRelay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", bmc_port)).unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        back.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let forge_types = forge_types.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let forged = Arc::new(AtomicUsize::new(0));
        let (stop2, forged2) = (stop.clone(), forged.clone());
        let thread = std::thread::spawn(move || {
            let mut client = None;
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    client = Some(from);
                    let _ = back.send(&buf[..n]);
                }
                let Ok(n) = back.recv(&mut buf) else { continue };
                let Some(to) = client else { continue };
                let reply = &buf[..n];
                let ptype = reply.get(5).copied().unwrap_or(0) & 0x3f;
                if reply.get(4) == Some(&0x06) && forge_types.contains(&ptype) {
                    let status = if ptype == PT_OPEN_RSP { 0x01 } else { 0x0d };
                    if let Some(f) = forge(reply, status, mode != Mode::NoIdThenGenuine) {
                        let _ = front.send_to(&f, to);
                        forged2.fetch_add(1, Ordering::Relaxed);
                    }
                    if mode == Mode::SpoofOnly {
                        continue;
                    }
                }
                let _ = front.send_to(reply, to);
            }
        });
        SpoofRelay {
            port,
            forged,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SpoofRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cfg(port: u16) -> IpmiConfig {
    let mut c = IpmiConfig::new("127.0.0.1", "admin", Secret::new(PW));
    c.port = port;
    c.cipher = Some(17);
    c.timeout = Duration::from_secs(2);
    c.retransmit = Duration::from_millis(100);
    c
}

/// A forged error before the genuine Open Session Response, RAKP 2, or both: the login
/// succeeds and the power state is read.
#[test]
fn forged_login_errors_before_the_genuine_reply_are_ignored() {
    for types in [&[PT_OPEN_RSP][..], &[PT_RAKP2], &[PT_OPEN_RSP, PT_RAKP2]] {
        let bmc = Bmc17::start(&[("admin", PW, 4)], None, &[17]);
        let relay = SpoofRelay::start(bmc.port, types, Mode::SpoofThenGenuine);
        let mut s = Session::open(&cfg(relay.port)).unwrap_or_else(|e| panic!("{types:?}: {e}"));
        assert_eq!(s.chassis_status().unwrap(), PowerState::On);
        s.close().unwrap();
        assert!(
            relay.forged.load(Ordering::Relaxed) >= types.len(),
            "{types:?}: the relay forged nothing"
        );
        assert_eq!(bmc.state.lock().unwrap().open_sessions, 0);
    }
}

/// A forged error without any console session ID cannot be told from a BMC's own (ipmi_sim
/// words Open Session errors so): it ends the login only if no genuine reply follows within
/// a grace period; here the genuine reply follows, and wins.
#[test]
fn forged_login_errors_without_an_id_lose_to_the_genuine_reply() {
    let bmc = Bmc17::start(&[("admin", PW, 4)], None, &[17]);
    let relay = SpoofRelay::start(bmc.port, &[PT_OPEN_RSP, PT_RAKP2], Mode::NoIdThenGenuine);
    let mut s = Session::open(&cfg(relay.port)).unwrap();
    assert_eq!(s.chassis_status().unwrap(), PowerState::On);
    s.close().unwrap();
    assert!(relay.forged.load(Ordering::Relaxed) >= 2);
}

/// Only forged errors: the login fails at its deadline with a login error naming the ignored
/// status (not sooner, as the forged error would make it), and nothing is sent to the chassis.
#[test]
fn only_forged_login_errors_fail_at_the_deadline() {
    for (types, step) in [(PT_OPEN_RSP, "Open Session"), (PT_RAKP2, "RAKP 2")] {
        let bmc = Bmc17::start(&[("admin", PW, 4)], None, &[17]);
        let relay = SpoofRelay::start(bmc.port, &[types], Mode::SpoofOnly);
        let c = cfg(relay.port);
        let t = Instant::now();
        let e = Session::open(&c).unwrap_err();
        let took = t.elapsed();
        assert!(
            matches!(&e, IpmiError::LoginDenied(m) if m.contains("not ours") && m.contains(step)),
            "{step}: {e:?}"
        );
        assert!(
            took >= c.timeout,
            "{step}: gave up after {took:?}, before the deadline"
        );
        assert!(
            took < c.timeout + Duration::from_secs(3),
            "{step}: {took:?}"
        );
        assert!(relay.forged.load(Ordering::Relaxed) >= 1);
        let st = bmc.state.lock().unwrap();
        assert!(
            st.power_on && st.controls.is_empty(),
            "{step}: {:?}",
            st.controls
        );
    }
}

/// Through the real binary: `off` against only forged replies is exit 1 with a `Failed:`
/// line, no success line, the chassis untouched; with a forged error before each genuine
/// reply, `off` powers the chassis off and reads it back.
#[test]
fn fence_bmc_off_with_forged_login_replies() {
    let bmc = Bmc17::start(&[("admin", PW, 4)], None, &[17]);
    let relay = SpoofRelay::start(bmc.port, &[PT_OPEN_RSP, PT_RAKP2], Mode::SpoofOnly);
    let port = relay.port.to_string();
    let text = format!(
        "action=off\nip=127.0.0.1\nipport={port}\nusername=admin\npassword={PW}\n\
         login_timeout=2\ncipher=17\n"
    );
    let r = agentcmd::stdin(&agentcmd::bin("fence_bmc"), &text);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Failed:"), "{r:?}");
    assert!(
        !r.stdout.contains("Success") && !r.stdout.contains("OFF"),
        "{r:?}"
    );
    assert!(!r.stdout.contains(PW) && !r.stderr.contains(PW));
    {
        let st = bmc.state.lock().unwrap();
        assert!(st.power_on && st.controls.is_empty(), "{:?}", st.controls);
    }
    drop(relay);

    let relay = SpoofRelay::start(bmc.port, &[PT_OPEN_RSP, PT_RAKP2], Mode::SpoofThenGenuine);
    let text = text.replace(&format!("ipport={port}"), &format!("ipport={}", relay.port));
    let r = agentcmd::stdin(&agentcmd::bin("fence_bmc"), &text);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Success"), "{r:?}");
    let st = bmc.state.lock().unwrap();
    assert!(!st.power_on && st.controls == [0], "{:?}", st.controls);
    assert!(relay.forged.load(Ordering::Relaxed) >= 2);
}
