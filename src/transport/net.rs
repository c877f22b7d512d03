//! Name resolution bounded by a deadline, shared by the SSH and IPMI transports (std's
//! resolver has no timeout of its own).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why `host` gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The resolver answered with an error, or with no address (the text says which).
    Failed(String),
    /// The resolver did not answer before the deadline.
    TimedOut,
}

/// The addresses of `host` (a literal address, with or without `[]`, needs no lookup). A
/// name is looked up on a helper thread, so a hanging resolver cannot outlive `deadline`.
pub fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, ResolveError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = bare.to_owned();
    std::thread::spawn(move || {
        let r = (name.as_str(), port)
            .to_socket_addrs()
            .map(|it| it.collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(v)) if v.is_empty() => Err(ResolveError::Failed("no address found".to_owned())),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ResolveError::Failed(e)),
        Err(_) => Err(ResolveError::TimedOut),
    }
}

/// A peer as an admin reads it, in OpenSSH's words: `192.0.2.1 port 22`.
pub fn peer(host: &str, port: u16) -> String {
    format!("{host} port {port}")
}

/// A duration in an error message: whole seconds as `5 s`, else tenths (`2.5 s`).
pub fn secs(d: Duration) -> String {
    let tenths = (d.as_secs_f64() * 10.0).round();
    if tenths % 10.0 == 0.0 {
        format!("{:.0} s", tenths / 10.0)
    } else {
        format!("{:.1} s", tenths / 10.0)
    }
}

pub use crate::protocol::error::io_words;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn words_for_admins() {
        assert_eq!(peer("192.0.2.1", 22), "192.0.2.1 port 22");
        assert_eq!(secs(Duration::from_secs(5)), "5 s");
        assert_eq!(secs(Duration::from_millis(2_998)), "3 s");
        assert_eq!(secs(Duration::from_millis(2_500)), "2.5 s");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_words(&refused), "connection refused");
        // ENETUNREACH (101 on Linux): the system's sentence, no `(os error 101)`.
        let unreach = std::io::Error::from_raw_os_error(101);
        assert_eq!(io_words(&unreach), "Network is unreachable");
        let refused_os = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_words(&refused_os), "connection refused");
    }

    #[test]
    fn literals_need_no_lookup_and_names_are_bounded() {
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            resolve("[::1]", 22, soon).unwrap(),
            vec!["[::1]:22".parse().unwrap()]
        );
        assert_eq!(
            resolve("127.0.0.1", 623, soon).unwrap(),
            vec!["127.0.0.1:623".parse().unwrap()]
        );
        assert!(!resolve("localhost", 22, soon).unwrap().is_empty());
        // A deadline already past: no wait for the resolver.
        let past = Instant::now();
        assert!(resolve("fencekit-no-such-host.invalid", 22, past).is_err());
    }
}
