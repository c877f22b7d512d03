//! The error type every agent and the action engine speak.
//!
//! Variants mirror fence-agents' `EC_*` meanings; their `Display` strings reuse upstream's
//! wording because they appear in Pacemaker logs and support articles. Every error makes the
//! process exit 1 (see `run.rs`); only `status` reporting OFF exits 2, and that is an outcome,
//! not an error. An error message never carries a secret: constructors take already-redacted
//! text, and transport layers must not put passwords into their messages.

use std::fmt;

/// Every way a fence action can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FenceError {
    /// Bad or missing options (upstream `fail_usage`); printed as `Failed: <text>`.
    #[error("{0}")]
    Usage(String),
    /// Login or authentication refused, or the connection could not be set up.
    #[error("Unable to connect/login to fencing device: {0}")]
    LoginDenied(String),
    /// The SSH host key (or other device identity) could not be verified.
    #[error("Host key verification failed: {0}")]
    HostKey(String),
    /// The connection broke in the middle of a session.
    #[error("Connection lost: {0}")]
    ConnectionLost(String),
    /// A network step or remote command did not finish within its timeout.
    #[error("Connection timed out: {0}")]
    TimedOut(String),
    /// `on` was never confirmed within `power_timeout`.
    #[error("Timed out waiting to power ON")]
    WaitingOn,
    /// `off` was never confirmed within `power_timeout`.
    #[error("Timed out waiting to power OFF")]
    WaitingOff,
    /// The power state could not be read, or was not a state we recognise.
    #[error("Unable to obtain correct plug status or plug is not available{}", detail(.0))]
    Status(String),
    /// The plug (VM, guest, outlet) does not exist on the device.
    #[error("{0}")]
    PlugNotFound(String),
    /// The device refused the request for lack of privilege.
    #[error("The user does not have the correct privileges to do the requested action.{}", detail(.0))]
    Privileges(String),
    /// The agent does not implement this operation.
    #[error("{0}")]
    Unsupported(String),
    /// The device answered with an error of its own (a vim-cmd fault, an IPMI completion code...).
    #[error("{0}")]
    Device(String),
}

fn detail(s: &str) -> DetailFmt<'_> {
    DetailFmt(s)
}

/// Formats an optional detail as `: <detail>` (nothing when empty).
struct DetailFmt<'a>(&'a str);

impl fmt::Display for DetailFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0)
        }
    }
}

impl FenceError {
    /// True for failures of the transport (worth a retry of the whole step), false for
    /// answers the device gave on purpose.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            FenceError::ConnectionLost(_) | FenceError::TimedOut(_)
        )
    }
}

/// Result alias used across the library.
pub type FenceResult<T> = Result<T, FenceError>;

/// Longest excerpt of device output quoted in an error message.
const EXCERPT: usize = 120;

/// Whether a character could change how a log line or a terminal shows text: C0/C1 controls
/// (ESC, CR, LF, ...), DEL, the Unicode line and paragraph separators and the bidirectional
/// overrides (which reorder what a reader sees).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Untrusted text made safe for one log line: every character [`is_unsafe_char`] calls unsafe
/// becomes a visible escape (`\n`, `\r`, `\t`, `\e`, `\x07`, `\u{202e}`), and at most `cap`
/// characters are kept (`…` when cut). The result never holds a line break or an escape byte,
/// so a value cannot forge a second log line (`\nSuccess: …`) or drive a terminal.
pub fn printable(text: &str, cap: usize) -> String {
    let mut out = String::new();
    for (shown, c) in text.chars().enumerate() {
        if shown >= cap {
            out.push('…');
            break;
        }
        if !is_unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
        }
    }
    out
}

/// A printable, shortened excerpt of untrusted device output for error messages: trimmed,
/// control characters (and the other [`is_unsafe_char`] characters) blanked, at most
/// [`EXCERPT`] characters (`…` when cut), `(empty)` for nothing.
pub fn excerpt(text: &str) -> String {
    let t = text.trim();
    let mut out: String = t
        .chars()
        .take(EXCERPT)
        .map(|c| if is_unsafe_char(c) { ' ' } else { c })
        .collect();
    if t.chars().nth(EXCERPT).is_some() {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

/// What an I/O error means, in words and without Rust's `(os error N)` suffix: `connection
/// refused`, `connection reset by the peer`, else the system's own sentence (`No route to
/// host`).
pub fn io_words(e: &std::io::Error) -> String {
    let fixed = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Some("connection refused"),
        std::io::ErrorKind::ConnectionReset => Some("connection reset by the peer"),
        std::io::ErrorKind::ConnectionAborted => Some("connection aborted"),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Some("timed out"),
        _ => None,
    };
    if let Some(words) = fixed {
        return words.to_owned();
    }
    let text = e.to_string();
    text.find(" (os error")
        .and_then(|at| text.get(..at))
        .unwrap_or(&text)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream_wording() {
        assert_eq!(
            FenceError::WaitingOff.to_string(),
            "Timed out waiting to power OFF"
        );
        assert_eq!(
            FenceError::Status(String::new()).to_string(),
            "Unable to obtain correct plug status or plug is not available"
        );
        assert_eq!(
            FenceError::Status("garbled".into()).to_string(),
            "Unable to obtain correct plug status or plug is not available (garbled)"
        );
    }

    #[test]
    fn printable_escapes_controls_and_caps() {
        assert_eq!(
            printable("a\nSuccess: x\r\u{1b}[2J\u{7}\u{202e}z", 100),
            "a\\nSuccess: x\\r\\e[2J\\x07\\u{202e}z"
        );
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("abc", 3), "abc");
        let p = printable(&"\u{1b}".repeat(10_000), 64);
        assert!(!p.contains('\u{1b}') && p.ends_with('…'), "{p}");
    }

    #[test]
    fn excerpt_blanks_controls_and_caps() {
        let e = excerpt("line1\nSuccess: Rebooted\r\u{1b}[31m");
        assert_eq!(e, "line1 Success: Rebooted  [31m");
        let long = excerpt(&"x".repeat(1 << 20));
        assert_eq!(long.chars().count(), EXCERPT + 1);
        assert!(long.ends_with('…'));
        assert_eq!(excerpt(" \n "), "(empty)");
    }
}
