//! UDP transport: one connected socket, resend with exponential backoff inside a deadline.
//!
//! [`Link::exchange`] sends a datagram (rebuilt for every attempt, so each attempt may carry a
//! fresh sequence number), then reads datagrams until the matcher accepts one, the attempt's
//! wait runs out (resend, interval doubled up to [`MAX_INTERVAL`]) or the deadline passes
//! ([`IpmiError::TimedOut`]). Datagrams the matcher does not recognise (late, duplicate, stray,
//! malformed) are dropped and never end the wait; an unverifiable error answer
//! ([`Verdict::Provisional`]) ends it only after a grace period without a better answer.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::IpmiError;
use crate::transport::net::{self, ResolveError};

/// Upper bound for the resend interval.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// Lower bound for the resend interval (and for any socket wait).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// What a matcher says about one received datagram.
pub(crate) enum Verdict<T> {
    /// Not ours: keep waiting.
    Ignore,
    /// The answer.
    Done(T),
    /// A definitive answer that is an error.
    Fail(IpmiError),
    /// An error answer that cannot be verified as ours (e.g. it lacks the session ID some
    /// BMCs omit from errors): it ends the exchange only if no other answer is taken during
    /// the rest of this attempt's wait, and at least the first resend interval after it arrived.
    /// The latest such error wins; a `Done` or `Fail` that arrives meanwhile replaces it.
    Provisional(IpmiError),
}

/// A connected UDP socket to one BMC.
#[derive(Debug)]
pub(crate) struct Link {
    sock: UdpSocket,
    /// `192.0.2.1 port 623`, for messages.
    peer: String,
    /// A deadline and the configured time it stands for (named in a timeout message as
    /// configured, `2 s`, not as measured).
    budget: Option<(Instant, Duration)>,
    first_interval: Duration,
    /// Datagrams sent (all attempts).
    pub sent: u64,
    /// Datagrams received and ignored.
    pub ignored: u64,
    /// Next rqSeq for sessionless requests (1..=62), shared by all of them so that a late
    /// answer to one can never match another.
    next_rq: u8,
}

impl Link {
    /// Resolves `host:port` (first address; name lookups bounded by `deadline`), binds an
    /// ephemeral port of the same family and connects, so only the BMC's datagrams are
    /// received.
    pub(crate) fn open(
        host: &str,
        port: u16,
        retransmit: Duration,
        deadline: Instant,
    ) -> Result<Link, IpmiError> {
        let addr = match net::resolve(host, port, deadline) {
            Ok(v) => v
                .into_iter()
                .next()
                .ok_or_else(|| IpmiError::Connect(format!("no address for {host}")))?,
            Err(ResolveError::Failed(m)) => {
                return Err(IpmiError::Connect(format!("cannot resolve {host}: {m}")))
            }
            Err(ResolveError::TimedOut) => {
                return Err(IpmiError::TimedOut(format!(
                    "no address for {host} (the name resolver did not answer in time)"
                )))
            }
        };
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = UdpSocket::bind(bind)
            .map_err(|e| IpmiError::Connect(format!("local UDP socket: {}", net::io_words(&e))))?;
        sock.connect(addr).map_err(|e| {
            IpmiError::Connect(format!(
                "{}: {}",
                net::peer(&addr.ip().to_string(), port),
                net::io_words(&e)
            ))
        })?;
        Ok(Link {
            sock,
            peer: net::peer(host, port),
            budget: None,
            first_interval: retransmit.max(Duration::from_millis(10)),
            sent: 0,
            ignored: 0,
            next_rq: 1,
        })
    }

    /// One request/answer exchange (see the module doc). `what` names the step in errors.
    pub(crate) fn exchange<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut make: impl FnMut(u32) -> Result<Vec<u8>, IpmiError>,
        matcher: impl FnMut(&[u8]) -> Verdict<T>,
    ) -> Result<T, IpmiError> {
        self.exchange_multi(what, deadline, |a| make(a).map(|p| vec![p]), matcher)
    }

    /// Like [`Link::exchange`], but each attempt may send several datagrams.
    pub(crate) fn exchange_multi<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut make: impl FnMut(u32) -> Result<Vec<Vec<u8>>, IpmiError>,
        mut matcher: impl FnMut(&[u8]) -> Verdict<T>,
    ) -> Result<T, IpmiError> {
        let budget = match self.budget {
            Some((d, b)) if d == deadline => b,
            _ => deadline.saturating_duration_since(Instant::now()),
        };
        let mut interval = self.first_interval;
        let mut refused = false;
        let mut buf = [0u8; 1024];
        let mut attempt = 0u32;
        let mut provisional = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                let why = if refused {
                    ": the host reports that nothing listens on that UDP port"
                } else {
                    ""
                };
                return Err(IpmiError::TimedOut(format!(
                    "no IPMI answer from {} within {}{why} ({what})",
                    self.peer,
                    net::secs(budget)
                )));
            }
            let pkts = make(attempt)?;
            attempt = attempt.saturating_add(1);
            for pkt in pkts {
                match self.sock.send(&pkt) {
                    Ok(_) => self.sent = self.sent.saturating_add(1),
                    // ICMP errors from an earlier datagram surface here; the BMC may be
                    // restarting.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused = true,
                    Err(e) => {
                        return Err(IpmiError::Connect(format!(
                            "sending to {}: {}",
                            self.peer,
                            net::io_words(&e)
                        )));
                    }
                }
            }
            let mut wait_until = (now + interval).min(deadline);
            interval = (interval * 2).min(MAX_INTERVAL);
            loop {
                let left = wait_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.sock
                    .set_read_timeout(Some(left.max(MIN_WAIT)))
                    .map_err(|e| IpmiError::Connect(format!("socket: {}", net::io_words(&e))))?;
                match self.sock.recv(&mut buf) {
                    Ok(n) => {
                        let dgram = buf.get(..n).unwrap_or_default();
                        match matcher(dgram) {
                            Verdict::Ignore => self.ignored = self.ignored.saturating_add(1),
                            Verdict::Done(v) => return Ok(v),
                            Verdict::Fail(e) => return Err(e),
                            Verdict::Provisional(e) => {
                                self.ignored = self.ignored.saturating_add(1);
                                let grace = (Instant::now() + self.first_interval).min(deadline);
                                wait_until = wait_until.max(grace);
                                provisional = Some(e);
                            }
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break
                    }
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        refused = true;
                        // Nothing to read until we send again; sleep out this attempt.
                        std::thread::sleep(wait_until.saturating_duration_since(Instant::now()));
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(IpmiError::Connect(format!(
                            "receiving from {}: {}",
                            self.peer,
                            net::io_words(&e)
                        )))
                    }
                }
            }
            if let Some(e) = provisional.take() {
                return Err(e);
            }
        }
    }

    /// Records that `deadline` stands for the configured `budget` (for messages).
    pub(crate) fn budget(&mut self, deadline: Instant, budget: Duration) {
        self.budget = Some((deadline, budget));
    }

    /// Takes the next sessionless rqSeq (1..=62; 0 and 63 are never used).
    pub(crate) fn take_rq_seq(&mut self) -> u8 {
        let s = self.next_rq.clamp(1, 62);
        self.next_rq = if s >= 62 { 1 } else { s + 1 };
        s
    }

    /// A second handle on the socket (same local port, same peer), for a datagram sent from
    /// another thread while this one waits (the close-on-abort Close Session).
    pub(crate) fn try_clone_socket(&self) -> std::io::Result<UdpSocket> {
        self.sock.try_clone()
    }

    /// Sends one datagram without waiting for anything (best effort).
    pub(crate) fn send_only(&mut self, pkt: &[u8]) {
        if self.sock.send(pkt).is_ok() {
            self.sent = self.sent.saturating_add(1);
        }
    }
}
