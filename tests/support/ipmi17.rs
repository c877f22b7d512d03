//! A small RMCP+ BMC responder for cipher suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128,
//! AES-CBC-128) and suite 3, on 127.0.0.1, because ipmi_sim 2.0.33 has no SHA-256.
//!
//! It is written from the IPMI 2.0 spec independently of `src/transport/ipmi` (only the RustCrypto
//! primitives are shared) and proven against `ipmitool -I lanplus -C 17` before the library is
//! tested against it. One thread, one UDP socket; state: users, power, open sessions.
//! Offers suites 3 and 17 in Get Channel Cipher Suites (or only those in `offer`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aes::Aes128;
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Shared, observable state of the responder.
#[derive(Debug, Default)]
pub struct State {
    /// Chassis power.
    pub power_on: bool,
    /// Sessions currently open.
    pub open_sessions: usize,
    /// Chassis Control requests seen (op codes).
    pub controls: Vec<u8>,
    /// Suites used by activated sessions.
    pub suites_used: Vec<u8>,
}

/// A running responder; stops on drop.
pub struct Bmc17 {
    /// UDP port.
    pub port: u16,
    /// Shared state.
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Hash {
    Sha1,
    Sha256,
}

fn hmac(h: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match h {
        Hash::Sha1 => {
            let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap();
            parts.iter().for_each(|p| m.update(p));
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha256 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            parts.iter().for_each(|p| m.update(p));
            m.finalize().into_bytes().to_vec()
        }
    }
}

struct Sess {
    hash: Hash,
    suite: u8,
    console_id: u32,
    rm: [u8; 16],
    rc: [u8; 16],
    role: u8,
    user: Vec<u8>,
    max_priv: u8,
    kuid: Vec<u8>,
    active: bool,
    k1: Vec<u8>,
    k2: Vec<u8>,
    priv_now: u8,
}

struct Server {
    users: HashMap<Vec<u8>, (Vec<u8>, u8)>,
    kg: Option<Vec<u8>>,
    guid: [u8; 16],
    offer: Vec<u8>,
    answer_cipher_query: bool,
    sessions: HashMap<u32, Sess>,
    next_id: u32,
    state: Arc<Mutex<State>>,
}

const RMCP: [u8; 4] = [6, 0, 0xff, 7];

fn cks(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)).wrapping_neg()
}

/// Builds the IPMI response for request message `m` with `data` (cc first).
fn ipmi_reply(m: &[u8], data: &[u8]) -> Vec<u8> {
    let netfn = (m[1] >> 2) | 1;
    let mut r = vec![m[3], netfn << 2];
    r.push(cks(&r));
    let body_start = r.len();
    r.extend_from_slice(&[0x20, m[4] & 0xfc, m[5]]);
    r.extend_from_slice(data);
    let c = cks(&r[body_start..]);
    r.push(c);
    r
}

impl Server {
    fn sessionless_ipmi(&self, m: &[u8]) -> Option<Vec<u8>> {
        if m.len() < 7 || cks(&m[..3]) != 0 || cks(&m[3..]) != 0 {
            return None;
        }
        let (netfn, cmd) = (m[1] >> 2, m[5]);
        let data = &m[6..m.len() - 1];
        Some(match (netfn, cmd) {
            (6, 0x38) => ipmi_reply(m, &[0, 1, 0x80, 0x04, 0x02, 0, 0, 0, 0]),
            (6, 0x54) if !self.answer_cipher_query => return None,
            (6, 0x54) => {
                let mut recs = Vec::new();
                for s in &self.offer {
                    match s {
                        3 => recs.extend_from_slice(&[0xc0, 3, 0x01, 0x41, 0x81]),
                        17 => recs.extend_from_slice(&[0xc0, 17, 0x03, 0x44, 0x81]),
                        _ => {}
                    }
                }
                let idx = usize::from(data.get(2).copied().unwrap_or(0) & 0x3f);
                let chunk: Vec<u8> = recs.iter().skip(idx * 16).take(16).copied().collect();
                let mut d = vec![0, 1];
                d.extend_from_slice(&chunk);
                ipmi_reply(m, &d)
            }
            _ => ipmi_reply(m, &[0xc1]),
        })
    }

    fn handle(&mut self, pkt: &[u8]) -> Option<Vec<u8>> {
        if pkt.len() < 5 || pkt[..4] != RMCP {
            return None;
        }
        let p = &pkt[4..];
        if p[0] == 0x00 {
            // IPMI 1.5 sessionless
            if p.len() < 10 {
                return None;
            }
            let len = usize::from(p[9]);
            let m = p.get(10..10 + len)?;
            let r = self.sessionless_ipmi(m)?;
            let mut out = RMCP.to_vec();
            out.extend_from_slice(&[0; 9]);
            out.push(r.len() as u8);
            out.extend_from_slice(&r);
            return Some(out);
        }
        if p[0] != 0x06 || p.len() < 12 {
            return None;
        }
        let ptype = p[1];
        let sid = u32::from_le_bytes(p[2..6].try_into().unwrap());
        let len = usize::from(u16::from_le_bytes(p[10..12].try_into().unwrap()));
        let payload = p.get(12..12 + len)?;
        if sid == 0 {
            let (rtype, body) = match ptype & 0x3f {
                0x00 => {
                    let r = self.sessionless_ipmi(payload)?;
                    (0x00, r)
                }
                0x10 => (0x11, self.open_session(payload)?),
                0x12 => (0x13, self.rakp1(payload)?),
                0x14 => (0x15, self.rakp3(payload)?),
                _ => return None,
            };
            let mut out = RMCP.to_vec();
            out.extend_from_slice(&[0x06, rtype, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&(body.len() as u16).to_le_bytes());
            out.extend_from_slice(&body);
            return Some(out);
        }
        self.session_packet(pkt, sid, ptype, payload)
    }

    fn open_session(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 32 {
            return None;
        }
        let tag = p[0];
        let console_id = u32::from_le_bytes(p[4..8].try_into().unwrap());
        let (a, i, c) = (p[12], p[20], p[28]);
        let suite = match (a, i, c) {
            (3, 4, 1) if self.offer.contains(&17) => 17,
            (1, 1, 1) if self.offer.contains(&3) => 3,
            _ => return Some(vec![tag, 0x11, 0, 0, p[4], p[5], p[6], p[7]]),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(
            id,
            Sess {
                hash: if suite == 17 {
                    Hash::Sha256
                } else {
                    Hash::Sha1
                },
                suite,
                console_id,
                rm: [0; 16],
                rc: [0; 16],
                role: 0,
                user: Vec::new(),
                max_priv: 0,
                kuid: Vec::new(),
                active: false,
                k1: Vec::new(),
                k2: Vec::new(),
                priv_now: 2,
            },
        );
        let mut r = vec![tag, 0, 4, 0];
        r.extend_from_slice(&console_id.to_le_bytes());
        r.extend_from_slice(&id.to_le_bytes());
        r.extend_from_slice(&[
            0, 0, 0, 8, a, 0, 0, 0, 1, 0, 0, 8, i, 0, 0, 0, 2, 0, 0, 8, c, 0, 0, 0,
        ]);
        Some(r)
    }

    fn rakp1(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 28 {
            return None;
        }
        let tag = p[0];
        let id = u32::from_le_bytes(p[4..8].try_into().unwrap());
        let role = p[24];
        let ulen = usize::from(p[27]);
        let user = p.get(28..28 + ulen)?.to_vec();
        let guid = self.guid;
        let s = self.sessions.get_mut(&id)?;
        let err = |st: u8| Some(vec![tag, st, 0, 0, 0, 0, 0, 0]);
        let Some((pw, max_priv)) = self.users.get(&user).cloned() else {
            return err(0x0d);
        };
        if role & 0x0f > max_priv {
            return err(0x09);
        }
        s.rm.copy_from_slice(&p[8..24]);
        getrandom::getrandom(&mut s.rc).unwrap();
        s.role = role;
        s.user = user.clone();
        s.max_priv = role & 0x0f;
        s.kuid = pw;
        let code = hmac(
            s.hash,
            &s.kuid,
            &[
                &s.console_id.to_le_bytes(),
                &id.to_le_bytes(),
                &s.rm,
                &s.rc,
                &guid,
                &[role, ulen as u8],
                &user,
            ],
        );
        let mut r = vec![tag, 0, 0, 0];
        r.extend_from_slice(&s.console_id.to_le_bytes());
        r.extend_from_slice(&s.rc);
        r.extend_from_slice(&guid);
        r.extend_from_slice(&code);
        Some(r)
    }

    fn rakp3(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 8 {
            return None;
        }
        let tag = p[0];
        let status = p[1];
        let id = u32::from_le_bytes(p[4..8].try_into().unwrap());
        let kg = self.kg.clone();
        let guid = self.guid;
        let s = self.sessions.get_mut(&id)?;
        let console = s.console_id.to_le_bytes();
        if status != 0 {
            self.sessions.remove(&id);
            return None;
        }
        let ulen = [s.role, s.user.len() as u8];
        let want = hmac(s.hash, &s.kuid, &[&s.rc, &console, &ulen, &s.user]);
        if p[8..] != want[..] {
            self.sessions.remove(&id);
            let mut r = vec![tag, 0x0f, 0, 0];
            r.extend_from_slice(&console);
            return Some(r);
        }
        let sik = hmac(
            s.hash,
            kg.as_deref().unwrap_or(&s.kuid),
            &[&s.rm, &s.rc, &ulen, &s.user],
        );
        // Spec: const1/const2 are 20 bytes (also for SHA-256, as ipmitool and OpenBMC do).
        s.k1 = hmac(s.hash, &sik, &[&[1u8; 20]]);
        s.k2 = hmac(s.hash, &sik, &[&[2u8; 20]]);
        let icv_len = if s.hash == Hash::Sha1 { 12 } else { 16 };
        let icv = hmac(s.hash, &sik, &[&s.rm, &id.to_le_bytes(), &guid]);
        if !s.active {
            s.active = true;
            let mut st = self.state.lock().unwrap();
            st.open_sessions += 1;
            st.suites_used.push(s.suite);
        }
        let mut r = vec![tag, 0, 0, 0];
        r.extend_from_slice(&console);
        r.extend_from_slice(&icv[..icv_len]);
        Some(r)
    }

    fn session_packet(
        &mut self,
        pkt: &[u8],
        sid: u32,
        ptype: u8,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let s = self.sessions.get(&sid)?;
        if !s.active || ptype != 0xc0 || payload.len() < 32 || pkt.len() < 40 {
            return None;
        }
        let maclen = if s.hash == Hash::Sha1 { 12 } else { 16 };
        let body = &pkt[4..pkt.len() - maclen];
        let mac = &pkt[pkt.len() - maclen..];
        if hmac(s.hash, &s.k1, &[body])[..maclen] != *mac {
            return None;
        }
        let (iv, ct) = payload.split_at(16);
        let mut buf = ct.to_vec();
        let dec = cbc::Decryptor::<Aes128>::new_from_slices(&s.k2[..16], iv).ok()?;
        let plain = dec.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?.to_vec();
        let padlen = usize::from(*plain.last()?);
        let m = plain.get(..plain.len().checked_sub(padlen + 1)?)?.to_vec();
        if m.len() < 7 || cks(&m[..3]) != 0 || cks(&m[3..]) != 0 {
            return None;
        }
        let (netfn, cmd) = (m[1] >> 2, m[5]);
        let data = m[6..m.len() - 1].to_vec();
        let mut close = false;
        let reply = {
            let s = self.sessions.get_mut(&sid)?;
            let mut st = self.state.lock().unwrap();
            match (netfn, cmd) {
                (6, 0x3b) => {
                    let want = data.first().copied().unwrap_or(0) & 0x0f;
                    if want == 0 {
                        ipmi_reply(&m, &[0, s.priv_now])
                    } else if want > s.max_priv {
                        ipmi_reply(&m, &[0x81])
                    } else {
                        s.priv_now = want;
                        ipmi_reply(&m, &[0, want])
                    }
                }
                (6, 0x3c) => {
                    close = true;
                    ipmi_reply(&m, &[0])
                }
                (6, 0x01) => {
                    ipmi_reply(&m, &[0, 0x20, 0x01, 0x01, 0x00, 0x51, 0x9f, 0, 0, 0, 0, 0])
                }
                (0, 0x01) => ipmi_reply(&m, &[0, u8::from(st.power_on), 0, 0x40]),
                (0, 0x02) => {
                    if s.priv_now < 3 {
                        ipmi_reply(&m, &[0xd4])
                    } else {
                        let op = data.first().copied().unwrap_or(0xff);
                        st.controls.push(op);
                        match op {
                            0 => st.power_on = false,
                            1..=3 => st.power_on = true,
                            _ => {}
                        }
                        ipmi_reply(&m, &[0])
                    }
                }
                _ => ipmi_reply(&m, &[0xc1]),
            }
        };
        let s = self.sessions.get(&sid)?;
        // Encrypt + authenticate the reply.
        let mut plain = reply;
        let pad = (16 - (plain.len() + 1) % 16) % 16;
        plain.extend((1..=pad).map(|i| i as u8));
        plain.push(pad as u8);
        let mut iv = [0u8; 16];
        getrandom::getrandom(&mut iv).unwrap();
        let n = plain.len();
        let enc = cbc::Encryptor::<Aes128>::new_from_slices(&s.k2[..16], &iv).ok()?;
        enc.encrypt_padded_mut::<NoPadding>(&mut plain, n).ok()?;
        let mut payload = iv.to_vec();
        payload.extend_from_slice(&plain);
        let mut out = RMCP.to_vec();
        out.extend_from_slice(&[0x06, 0xc0]);
        out.extend_from_slice(&s.console_id.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(&payload);
        let padn = (4 - (out.len() - 4 + 2) % 4) % 4;
        out.extend(std::iter::repeat(0xffu8).take(padn));
        out.push(padn as u8);
        out.push(0x07);
        let mac = hmac(s.hash, &s.k1, &[&out[4..]]);
        out.extend_from_slice(&mac[..maclen]);
        if close {
            self.sessions.remove(&sid);
            let mut st = self.state.lock().unwrap();
            st.open_sessions = st.open_sessions.saturating_sub(1);
        }
        Some(out)
    }
}

impl Bmc17 {
    /// Starts a responder with users `(name, password, max privilege)`, an optional Kg and the
    /// suites it offers (subset of 3 and 17).
    pub fn start(users: &[(&str, &str, u8)], kg: Option<&[u8]>, offer: &[u8]) -> Bmc17 {
        Bmc17::start_with(users, kg, offer, true)
    }

    /// As [`Bmc17::start`]; `answer_cipher_query = false` ignores Get Channel Cipher Suites
    /// (as some BMCs do before a session).
    pub fn start_with(
        users: &[(&str, &str, u8)],
        kg: Option<&[u8]>,
        offer: &[u8],
        answer_cipher_query: bool,
    ) -> Bmc17 {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let state = Arc::new(Mutex::new(State {
            power_on: true,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = Server {
            users: users
                .iter()
                .map(|(u, p, l)| (u.as_bytes().to_vec(), (p.as_bytes().to_vec(), *l)))
                .collect(),
            kg: kg.map(<[u8]>::to_vec),
            guid: *b"fencekit-ipmi17!",
            offer: offer.to_vec(),
            answer_cipher_query,
            sessions: HashMap::new(),
            next_id: 0x100,
            state: state.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let from: SocketAddr = from;
                if let Some(r) = server.handle(&buf[..n]) {
                    let _ = sock.send_to(&r, from);
                }
            }
        });
        Bmc17 {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bmc17 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
