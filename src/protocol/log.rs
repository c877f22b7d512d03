//! Logging: stderr (`YYYY-MM-DD HH:MM:SS,mmm LEVEL: message`, as fencing.py), syslog (facility
//! daemon, ident = agent name) and an optional `debug_file`.
//!
//! Errors and warnings always go to syslog and, unless `quiet`, to stderr. Debug lines go out
//! only with `verbose`. A successful run writes nothing to stderr (pcs shows any stderr as a
//! warning). Callers must never pass a secret: use [`crate::Secret`], which formats as `[set]`.
//!
//! Every message is one line: whatever a caller passes (a device's answer, a plug or address
//! from the configuration) goes through [`printable`], so control characters become visible
//! escapes and a message is capped at [`MAX_MESSAGE`] characters. A value holding
//! `\nSuccess: Rebooted` or terminal escapes can never forge a line of its own.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::error::printable;
use crate::protocol::userfile;

/// Longest message written, in characters (longer ones are cut, marked with `…`).
pub const MAX_MESSAGE: usize = 4096;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failure.
    Error,
    /// Something odd that did not stop the action.
    Warning,
    /// Progress, shown with `verbose`.
    Debug,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Debug => "DEBUG",
        }
    }
    fn syslog_severity(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warning => 4,
            Level::Debug => 7,
        }
    }
}

/// Where log lines go.
#[derive(Debug)]
struct Sink {
    ident: String,
    stderr: bool,
    verbose: bool,
    debug_file: Option<Mutex<File>>,
    syslog: Option<UnixDatagram>,
}

static SINK: OnceLock<Sink> = OnceLock::new();
static EARLY: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

/// Configures logging once. Lines logged before are replayed through the new sink.
/// Returns an error text when the debug file cannot be opened.
pub fn init(
    ident: &str,
    quiet: bool,
    verbose: bool,
    debug_file: Option<&str>,
) -> Result<(), String> {
    let file = match debug_file {
        // Opened without blocking and only as a regular file: a FIFO or a device named here
        // must not hang the agent before it even starts.
        Some(path) => Some(Mutex::new(
            userfile::open_append(Path::new(path), "debug_file").map_err(|e| {
                let prefix = format!("debug_file {path}: ");
                let why = e.strip_prefix(prefix.as_str()).unwrap_or(&e);
                format!("Unable to create file {path} ({why})")
            })?,
        )),
        None => None,
    };
    // Non-blocking: a backed-up syslog daemon loses our line rather than holding the agent.
    let syslog = UnixDatagram::unbound()
        .ok()
        .filter(|s| s.connect("/dev/log").is_ok() && s.set_nonblocking(true).is_ok());
    let _ = SINK.set(Sink {
        ident: ident.to_string(),
        stderr: !quiet,
        verbose,
        debug_file: file,
        syslog,
    });
    let early = EARLY
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for (level, msg) in early {
        log(level, &msg);
    }
    Ok(())
}

/// Logs a line at `level`.
pub fn log(level: Level, msg: &str) {
    let Some(sink) = SINK.get() else {
        // Before init (option parsing): keep the line; `init` replays it. If init never runs,
        // `flush_early` writes it to stderr.
        if let Ok(mut v) = EARLY.lock() {
            v.push((level, msg.to_string()));
        }
        return;
    };
    let shown = level != Level::Debug || sink.verbose;
    if !shown {
        return;
    }
    let msg = printable(msg, MAX_MESSAGE);
    let msg = msg.as_str();
    let line = format!("{} {}: {}\n", timestamp(), level.word(), msg);
    if sink.stderr {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    if let Some(f) = &sink.debug_file {
        if let Ok(mut f) = f.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
    if let Some(s) = &sink.syslog {
        let pri = 3 * 8 + level.syslog_severity();
        let _ =
            s.send(format!("<{pri}>{}[{}]: {}", sink.ident, std::process::id(), msg).as_bytes());
    }
}

/// Writes lines logged before `init` to stderr (used when the run ends before logging was set up).
pub fn flush_early() {
    let early = EARLY
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for (level, msg) in early {
        if level != Level::Debug {
            let msg = printable(&msg, MAX_MESSAGE);
            let _ = std::io::stderr()
                .write_all(format!("{} {}: {}\n", timestamp(), level.word(), msg).as_bytes());
        }
    }
}

/// Debug line (only with `verbose`).
pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// Warning line.
pub fn warn(msg: &str) {
    log(Level::Warning, msg);
}

/// Error line.
pub fn error(msg: &str) {
    log(Level::Error, msg);
}

/// `YYYY-MM-DD HH:MM:SS,mmm` in UTC.
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02},{:03}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
