//! IPMI 1.5 session with MD5 auth codes (legacy BMCs, fence_ipmilan's `lanplus=0`):
//! Get Channel Authentication Capabilities, Get Session Challenge, Activate Session, then
//! MD5-authenticated messages with increasing session sequence numbers.

use std::cell::Cell;
use std::time::Instant;

use super::codec::{self, Cursor, RMCP_HEADER};
use super::crypto;
use super::rmcpplus::sessionless_command;
use super::transport::{Link, Verdict};
use super::{IpmiConfig, IpmiError};

/// Auth type MD5.
const AUTH_MD5: u8 = 0x02;

/// An active IPMI 1.5 session. `Debug` shows no password.
pub(crate) struct V15 {
    /// Session ID assigned by the BMC.
    pub sid: u32,
    seq: Cell<u32>,
    pw: [u8; 16],
}

impl std::fmt::Debug for V15 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V15")
            .field("sid", &self.sid)
            .field("seq", &self.seq.get())
            .finish_non_exhaustive()
    }
}

/// A 1.5 packet with MD5 auth code.
pub(crate) fn packet(pw: &[u8; 16], sid: u32, seq: u32, msg: &[u8]) -> Vec<u8> {
    let mut out = RMCP_HEADER.to_vec();
    out.push(AUTH_MD5);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&sid.to_le_bytes());
    out.extend_from_slice(&crypto::md5_authcode(pw, sid, msg, seq));
    out.push(msg.len() as u8);
    out.extend_from_slice(msg);
    out
}

/// Checks an MD5-authenticated 1.5 packet for session `sid`; returns the message.
pub(crate) fn parse(pw: &[u8; 16], sid: u32, dgram: &[u8]) -> Option<Vec<u8>> {
    let mut c = Cursor::new(dgram);
    if c.take(4)? != RMCP_HEADER || c.u8()? != AUTH_MD5 {
        return None;
    }
    let seq = c.u32le()?;
    if c.u32le()? != sid {
        return None;
    }
    let code = c.array::<16>()?;
    let len = usize::from(c.u8()?);
    let msg = c.take(len)?;
    // At most one legacy pad byte may follow.
    if c.remaining() > 1 {
        return None;
    }
    let want = crypto::md5_authcode(pw, sid, msg, seq);
    crypto::ct_eq(&want, &code).then(|| msg.to_vec())
}

impl V15 {
    /// Wraps a message (next sequence number).
    pub(crate) fn wrap(&self, msg: &[u8]) -> Result<Vec<u8>, IpmiError> {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1).max(1));
        Ok(packet(&self.pw, self.sid, seq, msg))
    }

    /// Authenticates and unwraps a reply.
    pub(crate) fn unwrap(&self, dgram: &[u8]) -> Option<Vec<u8>> {
        parse(&self.pw, self.sid, dgram)
    }
}

fn cc_error(step: &str, cc: u8) -> IpmiError {
    let text = match (step, cc) {
        ("Get Session Challenge", 0x81) => "invalid user name",
        ("Get Session Challenge", 0x82) => "null user name not enabled",
        ("Activate Session", 0x81) => "no session slot available",
        ("Activate Session", 0x82) => "no slot available for this user",
        ("Activate Session", 0x83) => "no slot available to support the user's privilege",
        ("Activate Session", 0x84) => "session sequence number out of range",
        ("Activate Session", 0x85) => "invalid session ID in request",
        ("Activate Session", 0x86) => "requested privilege exceeds the user's or channel's limit",
        _ => super::completion_text(cc),
    };
    let msg = format!("{step}: completion code 0x{cc:02x} ({text})");
    if step == "Activate Session" && cc == 0x86 {
        IpmiError::Privileges(msg)
    } else {
        IpmiError::LoginDenied(msg)
    }
}

/// Logs in with IPMI 1.5 / MD5.
pub(crate) fn login(
    link: &mut Link,
    cfg: &IpmiConfig,
    deadline: Instant,
) -> Result<V15, IpmiError> {
    let mut pw = [0u8; 16];
    for (d, s) in pw.iter_mut().zip(cfg.password.expose().as_bytes()) {
        *d = *s;
    }
    let mut user = [0u8; 16];
    for (d, s) in user.iter_mut().zip(cfg.username.as_bytes()) {
        *d = *s;
    }
    let priv_code = cfg.privilege.code();
    let caps = sessionless_command(
        link,
        "Get Channel Authentication Capabilities",
        deadline,
        0x06,
        0x38,
        &[0x0e, priv_code],
    )?;
    if caps.cc != 0 {
        return Err(cc_error("Get Channel Authentication Capabilities", caps.cc));
    }
    match caps.data.get(1) {
        Some(types) if types & (1 << AUTH_MD5) != 0 => {}
        Some(_) => {
            return Err(IpmiError::LoginDenied(
                "BMC offers no MD5 authentication for IPMI 1.5 (try lanplus=1)".into(),
            ))
        }
        None => {
            return Err(IpmiError::Protocol(
                "short Get Channel Authentication Capabilities answer".into(),
            ))
        }
    }
    let mut last = None;
    for _ in 0..3 {
        let ch = sessionless_command(
            link,
            "Get Session Challenge",
            deadline,
            0x06,
            0x39,
            &[&[AUTH_MD5][..], &user].concat(),
        )?;
        if ch.cc != 0 {
            return Err(cc_error("Get Session Challenge", ch.cc));
        }
        let mut c = Cursor::new(&ch.data);
        let (Some(temp_sid), Some(challenge)) = (c.u32le(), c.array::<16>()) else {
            return Err(IpmiError::Protocol(
                "short Get Session Challenge answer".into(),
            ));
        };
        let mut out_seq = [0u8; 4];
        crypto::random(&mut out_seq).map_err(IpmiError::Connect)?;
        let mut data = vec![AUTH_MD5, priv_code];
        data.extend_from_slice(&challenge);
        data.extend_from_slice(&out_seq);
        let used = codec::SeqSet::default();
        let sent = Cell::new(0u32);
        let seqs: Vec<u8> = (0..24).map(|_| link.take_rq_seq()).collect();
        let r = link.exchange(
            "Activate Session",
            deadline,
            |attempt| {
                let s = seqs
                    .get(attempt as usize % seqs.len())
                    .copied()
                    .unwrap_or(1);
                used.mark(s);
                sent.set(sent.get() + 1);
                Ok(packet(
                    &pw,
                    temp_sid,
                    0,
                    &codec::encode_request(0x06, 0x3a, s, &data),
                ))
            },
            |dgram| {
                let msg = parse(&pw, temp_sid, dgram);
                match msg.as_deref().and_then(codec::decode_response) {
                    Some(r) if used.answers(&r, 0x06, 0x3a) => Verdict::Done(r),
                    _ => Verdict::Ignore,
                }
            },
        );
        let r = match r {
            Ok(r) => r,
            Err(IpmiError::TimedOut(_)) => {
                return Err(IpmiError::LoginDenied(
                    "no answer to Activate Session: wrong password or user?".into(),
                ))
            }
            Err(e) => return Err(e),
        };
        if r.cc != 0 {
            let e = cc_error("Activate Session", r.cc);
            // A resend after a lost answer finds the challenge already used: start over.
            if sent.get() > 1 && Instant::now() < deadline {
                last = Some(e);
                continue;
            }
            return Err(e);
        }
        let mut c = Cursor::new(&r.data);
        let (Some(_auth), Some(sid), Some(in_seq)) = (c.u8(), c.u32le(), c.u32le()) else {
            return Err(IpmiError::Protocol("short Activate Session answer".into()));
        };
        if sid == 0 {
            return Err(IpmiError::Protocol(
                "Activate Session gave session ID 0".into(),
            ));
        }
        return Ok(V15 {
            sid,
            seq: Cell::new(in_seq.max(1)),
            pw,
        });
    }
    Err(last.unwrap_or_else(|| IpmiError::LoginDenied("Activate Session failed".into())))
}

pub(crate) mod test_support {
    //! 1.5 packets for unit tests and the fuzz harness (`rmcpplus::fuzz`).
    use super::*;

    /// A session with a known password.
    pub(crate) fn session() -> V15 {
        V15 {
            sid: 0x0102_0304,
            seq: Cell::new(5),
            pw: *b"pass\0\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    /// The BMC's reply packet for `msg`.
    pub(crate) fn bmc_packet(s: &V15, seq: u32, msg: &[u8]) -> Vec<u8> {
        packet(&s.pw, s.sid, seq, msg)
    }
}
