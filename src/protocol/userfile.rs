//! Files a user names (`debug_file`, `known_hosts`, `guests_conf`, an inventory): opened
//! without blocking, accepted only when they are regular files, and read only up to a cap.
//!
//! A FIFO, a device such as `/dev/zero` or a huge sparse file must neither hang an agent
//! (opening a FIFO for reading blocks until a writer comes) nor let it allocate without bound.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// Largest `known_hosts` file read (OpenSSH's are a few KiB; 16 MiB is thousands of hosts).
pub const KNOWN_HOSTS_CAP: u64 = 16 << 20;

/// Opens `opts` on `path` with `O_NONBLOCK` (so a FIFO cannot block the open) and refuses
/// anything that is not a regular file. `what` names the file in the error text.
fn open_checked(
    opts: &mut OpenOptions,
    path: &Path,
    what: &str,
) -> Result<(File, Metadata), String> {
    let shown = path.display();
    let file = opts
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|e| format!("{what} {shown}: cannot open: {}", io_reason(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{what} {shown}: cannot read: {}", io_reason(&e)))?;
    if !meta.is_file() {
        return Err(format!("{what} {shown}: not a regular file"));
    }
    Ok((file, meta))
}

/// Opens `path` for appending (created when missing, mode 0600), refusing non-regular files.
pub fn open_append(path: &Path, what: &str) -> Result<File, String> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true).mode(0o600);
    open_checked(&mut opts, path, what).map(|(f, _)| f)
}

/// Reads a regular file of at most `cap` bytes. Returns its bytes and its metadata (taken from
/// the open file, so the checks and the bytes describe the same file).
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<(Vec<u8>, Metadata), String> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    let (file, meta) = open_checked(&mut opts, path, what)?;
    let shown = path.display();
    if meta.len() > cap {
        return Err(format!("{what} {shown}: larger than {cap} bytes"));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what} {shown}: cannot read: {}", io_reason(&e)))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > cap) {
        return Err(format!("{what} {shown}: larger than {cap} bytes"));
    }
    Ok((bytes, meta))
}

/// An I/O error's reason in words (`no such file or directory`).
fn io_reason(e: &std::io::Error) -> String {
    crate::protocol::error::io_words(e)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        let err = read_capped(&fifo, 100, "known_hosts").unwrap_err();
        assert!(err.ends_with("not a regular file"), "{err}");
        // Without a reader, a non-blocking open for writing fails at once (ENXIO).
        let err = open_append(&fifo, "debug_file").unwrap_err();
        assert!(
            err.ends_with("not a regular file") || err.ends_with("No such device or address"),
            "{err}"
        );
    }

    #[test]
    fn devices_and_oversized_files_are_refused() {
        let err = read_capped(Path::new("/dev/zero"), 100, "known_hosts").unwrap_err();
        assert!(err.ends_with("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let f = File::create(&big).unwrap();
        f.set_len(2 << 30).unwrap(); // sparse: 2 GiB without using the disk
        let err = read_capped(&big, 1 << 20, "guests_conf").unwrap_err();
        assert!(err.ends_with("larger than 1048576 bytes"), "{err}");
        std::fs::write(&big, b"abc").unwrap();
        assert_eq!(read_capped(&big, 3, "x").unwrap().0, b"abc");
        let err = read_capped(&dir.path().join("missing"), 3, "x").unwrap_err();
        assert!(
            err.ends_with("cannot open: No such file or directory"),
            "{err}"
        );
    }
}
