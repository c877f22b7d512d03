//! SSH transport for agents that drive a remote shell command (fence_esxi, fence_kvmguest, the
//! evacuation engine), built on libssh2 through the `ssh2` crate.
//!
//! One [`SshSession`] is one TCP connection, key exchange and login; [`SshSession::exec`] runs
//! one command per exec channel (never an interactive shell, never a pty) and returns its exit
//! status and its stdout and stderr separately.
//!
//! Guarantees:
//! - **Nothing can hang.** libssh2 runs in non-blocking mode and every step waits on the socket
//!   with `poll(2)` against an absolute deadline: connect + handshake + host-key check + login
//!   share [`SshConfig::connect_timeout`]; each command has its own timeout, which also bounds a
//!   remote command that keeps its channel open forever. Output is capped
//!   ([`SshConfig::max_output`]).
//! - **Host keys are verified by default**, against OpenSSH known_hosts files (plain, hashed and
//!   `[host]:port` entries, comma lists, `*`/`?` patterns, `!` negation, `@revoked`) or against
//!   pinned SHA256 fingerprints. An unknown or changed key is an error naming the fingerprint
//!   seen and how to trust it; `accept_new` records an unknown key on first contact only.
//! - **Authentication** by private key (optional passphrase) or password; a password is offered
//!   through the `password` method and through `keyboard-interactive` (the only one real ESXi
//!   offers), answering the password to every non-echoing prompt.
//! - **Secrets never reach text**: errors name the user, the host, the method, never a password.
//!
//! Layout: this file holds the session ([`SshSession`], [`LazySession`]), its configuration
//! and its errors; `known_hosts` verifies and records host keys (OpenSSH files and pinned
//! fingerprints); `base64` is the codec both need; `shell` is what goes to the remote shell
//! (quoting, the sudo prefix) and [`RemoteShell`], which runs one remote command the way every
//! agent does. What callers use is re-exported here.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ssh2::{BlockDirections, HashType, KeyboardInteractivePrompt, MethodType, Prompt};

use crate::protocol::error::FenceError;
use crate::protocol::options::{self, Options};
use crate::protocol::secret::Secret;
use crate::transport::net::{self, ResolveError};

mod base64;
mod known_hosts;
mod shell;

use known_hosts::{
    check_known_hosts, host_key_preference, key_type_name, known_hosts_files, parse_fingerprints,
    read_known_hosts,
};
pub use shell::{first_line, log_command, shell_quote, sudo_prefix, RemoteShell};

/// Default cap on the bytes collected from one command (stdout and stderr together).
pub const DEFAULT_MAX_OUTPUT: usize = 16 * 1024 * 1024;

// libssh2 error codes used for classification (LIBSSH2_ERROR_*).
const E_BANNER_RECV: i32 = -2;
const E_BANNER_SEND: i32 = -3;
const E_KEX_FAILURE: i32 = -5;
const E_SOCKET_SEND: i32 = -7;
const E_TIMEOUT: i32 = -9;
const E_SOCKET_DISCONNECT: i32 = -13;
const E_AUTHENTICATION_FAILED: i32 = -18;
const E_PUBLICKEY_UNVERIFIED: i32 = -19;
const E_CHANNEL_CLOSED: i32 = -26;
const E_SOCKET_TIMEOUT: i32 = -30;
const E_EAGAIN: i32 = -37;
const E_SOCKET_RECV: i32 = -43;

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshAuth {
    /// A password, offered through `password` and `keyboard-interactive`.
    Password(Secret),
    /// A private key file (OpenSSH or PEM format), with its passphrase if it has one.
    Key {
        /// Path of the private key.
        path: PathBuf,
        /// Passphrase of the key, if it is encrypted.
        passphrase: Option<Secret>,
    },
}

/// How the server's host key is verified.
///
/// With `fingerprint` set, only the pinned fingerprint(s) are accepted and known_hosts is not
/// read. Otherwise the key must be in `known_hosts` (or, when that is `None`, in
/// `~/.ssh/known_hosts` or `/etc/ssh/ssh_known_hosts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostKeyPolicy {
    /// known_hosts file to use instead of the default pair.
    pub known_hosts: Option<PathBuf>,
    /// Pinned fingerprint(s), `SHA256:<base64>` as OpenSSH prints them; several may be given
    /// separated by commas or blanks. The `SHA256:` prefix and `=` padding are optional.
    pub fingerprint: Option<String>,
    /// Record an unknown key on first contact (into `known_hosts` or `~/.ssh/known_hosts`).
    /// A key that differs from a recorded one is still refused.
    pub accept_new: bool,
}

/// Everything needed to open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Host name or IP address (IPv6 with or without brackets).
    pub host: String,
    /// TCP port (22 by default).
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Credentials.
    pub auth: SshAuth,
    /// Host-key verification policy.
    pub host_key: HostKeyPolicy,
    /// Bound on TCP connect + key exchange + host-key check + login, all together.
    pub connect_timeout: Duration,
    /// Default timeout of one command, for callers that have no better one.
    pub command_timeout: Duration,
    /// Cap on the bytes one command may send back (stdout + stderr).
    pub max_output: usize,
}

impl SshConfig {
    /// A configuration with port 22, host keys checked against the default known_hosts files,
    /// 10 s to connect and log in, 30 s per command and a 16 MiB output cap.
    pub fn new(host: impl Into<String>, user: impl Into<String>, auth: SshAuth) -> Self {
        SshConfig {
            host: host.into(),
            port: 22,
            user: user.into(),
            auth,
            host_key: HostKeyPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Builds a configuration from the shared option rows: `ip`, `ipport` (default 22),
    /// `username`, `identity_file` (the password, if any, is then its passphrase) or
    /// `password`, `known_hosts`, `host_key_fingerprint`, `accept_new_host_key`,
    /// `login_timeout` (connect + login) and `shell_timeout` (default per command).
    pub fn from_options(opts: &Options) -> Result<SshConfig, FenceError> {
        let host = opts
            .ip()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| FenceError::Usage("You have to enter fence address".to_owned()))?;
        let user = opts
            .username()
            .ok_or_else(|| FenceError::Usage("You have to enter a login name".to_owned()))?;
        let port = match opts.int(&options::IPPORT) {
            None => 22,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| FenceError::Usage(format!("ipport {p} is not a TCP port")))?,
        };
        let auth = match (opts.get(&options::IDENTITY_FILE), opts.password()) {
            (Some(path), pass) => SshAuth::Key {
                path: PathBuf::from(path),
                passphrase: pass.cloned(),
            },
            (None, Some(pw)) => SshAuth::Password(pw.clone()),
            (None, None) => {
                return Err(FenceError::Usage(
                    "You have to set login password or identity file".to_owned(),
                ))
            }
        };
        let nonzero = |d: Duration, dflt: u64| {
            if d.is_zero() {
                Duration::from_secs(dflt)
            } else {
                d
            }
        };
        let mut cfg = SshConfig::new(host, user, auth);
        cfg.port = port;
        cfg.host_key = HostKeyPolicy {
            known_hosts: opts.get(&options::KNOWN_HOSTS).map(PathBuf::from),
            fingerprint: opts.get(&options::HOST_KEY_FINGERPRINT).map(str::to_owned),
            accept_new: opts.flag(&options::ACCEPT_NEW_HOST_KEY),
        };
        cfg.connect_timeout = nonzero(opts.login_timeout(), 5);
        cfg.command_timeout = nonzero(opts.shell_timeout(), 3);
        Ok(cfg)
    }

    /// The name OpenSSH uses for this host in known_hosts: `host` for port 22, else
    /// `[host]:port`.
    pub fn known_hosts_name(&self) -> String {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if self.port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{}", self.port)
        }
    }
}

/// Why an SSH step failed. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// Bad local configuration (unreadable key file, malformed fingerprint...).
    #[error("{0}")]
    Config(String),
    /// Name resolution, TCP connect or key exchange failed.
    #[error("{0}")]
    Connect(String),
    /// The server refused our credentials.
    #[error("{0}")]
    Auth(String),
    /// The host key is not in known_hosts (and `accept_new` is off).
    #[error("host key for {host} is unknown ({key_type} {fingerprint}); to trust it, check the fingerprint with the host's administrator and either add it to {file} (e.g. `ssh-keyscan {keyscan_args} >> {file}`), or set host_key_fingerprint={fingerprint}, or accept it once with accept_new_host_key")]
    HostKeyUnknown {
        /// `host` or `[host]:port`.
        host: String,
        /// Key type seen, e.g. `ssh-ed25519`.
        key_type: String,
        /// `SHA256:<base64>` of the key seen.
        fingerprint: String,
        /// The known_hosts file to add it to.
        file: String,
        /// `ssh-keyscan` arguments that fetch it.
        keyscan_args: String,
    },
    /// The host key differs from the recorded or pinned one (or is revoked).
    #[error("host key for {host} does NOT match ({key_type} {fingerprint} seen; {expected}); the host may have been reinstalled or someone may be intercepting the connection; if the change is legitimate, remove the old entry (`ssh-keygen -R '{host}'`) and add the new key, or update host_key_fingerprint")]
    HostKeyMismatch {
        /// `host` or `[host]:port`.
        host: String,
        /// Key type seen.
        key_type: String,
        /// `SHA256:<base64>` of the key seen.
        fingerprint: String,
        /// What was expected (where the recorded key comes from).
        expected: String,
    },
    /// A step did not finish within its timeout.
    #[error("{0}")]
    Timeout(String),
    /// The connection broke.
    #[error("{0}")]
    Lost(String),
    /// Any other SSH-level failure (channel refused, output too large...).
    #[error("{0}")]
    Protocol(String),
}

impl From<SshError> for FenceError {
    fn from(e: SshError) -> Self {
        let text = e.to_string();
        match e {
            SshError::Config(_) => FenceError::Usage(text),
            SshError::Connect(_) | SshError::Auth(_) => FenceError::LoginDenied(text),
            SshError::HostKeyUnknown { .. } | SshError::HostKeyMismatch { .. } => {
                FenceError::HostKey(text)
            }
            SshError::Timeout(_) => FenceError::TimedOut(text),
            SshError::Lost(_) => FenceError::ConnectionLost(text),
            SshError::Protocol(_) => FenceError::Device(text),
        }
    }
}

/// What one command returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; `None` when the command died of a signal (see `signal`) or the server sent
    /// none.
    pub status: Option<i32>,
    /// Signal name (without `SIG`) when the remote command was killed by one.
    pub signal: Option<String>,
    /// Bytes written to stdout.
    pub stdout: Vec<u8>,
    /// Bytes written to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How the host key was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// Found in a known_hosts file.
    Known(PathBuf),
    /// Equal to a pinned fingerprint.
    Pinned,
    /// Unknown, recorded into this file because `accept_new` was set.
    Added(PathBuf),
}

/// An authenticated SSH connection.
pub struct SshSession {
    sess: ssh2::Session,
    sock: TcpStream,
    label: String,
    fingerprint: String,
    key_type: String,
    host_key_status: HostKeyStatus,
    max_output: usize,
    command_timeout: Duration,
    broken: Option<String>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("peer", &self.label)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects, verifies the host key, and logs in, all within `cfg.connect_timeout`.
    pub fn connect(cfg: &SshConfig) -> Result<SshSession, SshError> {
        let deadline = Instant::now() + cfg.connect_timeout;
        let label = format!("{}@{}", cfg.user, cfg.known_hosts_name());
        if let SshAuth::Key { path, .. } = &cfg.auth {
            std::fs::metadata(path).map_err(|e| {
                SshError::Config(format!(
                    "identity file {}: {}",
                    path.display(),
                    net::io_words(&e)
                ))
            })?;
        }
        let pins = match &cfg.host_key.fingerprint {
            Some(text) => Some(parse_fingerprints(text)?),
            None => None,
        };
        let kh_name = cfg.known_hosts_name();
        let kh_files = known_hosts_files(&cfg.host_key);
        let entries = match pins {
            Some(_) => Vec::new(),
            None => read_known_hosts(&kh_files, &kh_name)?,
        };

        let peer = net::peer(&cfg.host, cfg.port);
        let tcp = tcp_connect(&cfg.host, cfg.port, deadline, cfg.connect_timeout)?;
        let _ = tcp.set_nodelay(true);
        let sock = tcp
            .try_clone()
            .map_err(|e| SshError::Connect(format!("{peer}: socket: {}", net::io_words(&e))))?;
        let mut sess = ssh2::Session::new()
            .map_err(|e| SshError::Protocol(format!("cannot create an SSH session: {e}")))?;
        sess.set_tcp_stream(tcp);
        sess.set_blocking(false);
        if let Some(pref) = host_key_preference(&sess, &entries) {
            // Only a preference: libssh2 ignores names it does not know.
            let _ = sess.method_pref(MethodType::HostKey, &pref);
        }

        run_nb(&mut sess, &sock, deadline, "SSH handshake", |s| {
            s.handshake()
        })
        .map_err(|e| match e {
            SshError::Timeout(_) => SshError::Timeout(format!(
                "no SSH answer from {peer} within {}",
                net::secs(cfg.connect_timeout)
            )),
            SshError::Lost(m) | SshError::Protocol(m) => SshError::Connect(format!(
                "SSH handshake with {peer} failed: {}",
                m.trim_start_matches("SSH handshake: ")
            )),
            other => other,
        })?;

        // Host key.
        let (key_blob, key_kind) = sess
            .host_key()
            .map(|(k, t)| (k.to_vec(), t))
            .ok_or_else(|| SshError::Protocol(format!("{label}: server sent no host key")))?;
        let key_type = key_type_name(key_kind).to_owned();
        let fingerprint = sess
            .host_key_hash(HashType::Sha256)
            .map(|h| format!("SHA256:{}", base64::encode(h, false)))
            .ok_or_else(|| SshError::Protocol(format!("{label}: no host key hash")))?;
        let host_key_status = match pins {
            Some(pins) => {
                let seen = fingerprint.trim_start_matches("SHA256:");
                if pins.iter().any(|p| p == seen) {
                    HostKeyStatus::Pinned
                } else {
                    return Err(SshError::HostKeyMismatch {
                        host: kh_name,
                        key_type,
                        fingerprint,
                        expected: "host_key_fingerprint pins another key".to_owned(),
                    });
                }
            }
            None => check_known_hosts(
                &entries,
                &kh_files,
                &kh_name,
                cfg,
                &key_type,
                &base64::encode(&key_blob, true),
                &fingerprint,
            )?,
        };

        authenticate(&mut sess, &sock, deadline, cfg, &label)?;

        Ok(SshSession {
            sess,
            sock,
            label,
            fingerprint,
            key_type,
            host_key_status,
            max_output: cfg.max_output,
            command_timeout: cfg.command_timeout,
            broken: None,
        })
    }

    /// Runs one command with the configured [`SshConfig::command_timeout`].
    pub fn exec_default(&mut self, cmd: &str) -> Result<ExecOutput, SshError> {
        self.exec(cmd, self.command_timeout)
    }

    /// The configured default command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// SHA256 fingerprint of the server's host key, `SHA256:<base64>`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Type of the server's host key, e.g. `ssh-ed25519`.
    pub fn host_key_type(&self) -> &str {
        &self.key_type
    }

    /// How the host key was accepted (known, pinned, or just recorded).
    pub fn host_key_status(&self) -> &HostKeyStatus {
        &self.host_key_status
    }

    /// Runs one command on an exec channel and collects its output, within `timeout`.
    ///
    /// The command string goes to the remote user's shell as is: build it from trusted parts
    /// only (quote anything else with [`shell_quote`]). Any error (timeout, broken connection,
    /// output over the cap) makes the session unusable: later calls fail at once with
    /// [`SshError::Lost`] and the caller reconnects. A non-zero exit status is not an error.
    pub fn exec(&mut self, cmd: &str, timeout: Duration) -> Result<ExecOutput, SshError> {
        if let Some(why) = &self.broken {
            return Err(SshError::Lost(format!(
                "{}: session unusable after an earlier failure ({why})",
                self.label
            )));
        }
        let result = self.exec_inner(cmd, timeout);
        if let Err(e) = &result {
            // A channel abandoned mid-way leaves libssh2 state behind: start afresh.
            self.broken = Some(e.to_string());
        }
        result
    }

    fn exec_inner(&mut self, cmd: &str, timeout: Duration) -> Result<ExecOutput, SshError> {
        let deadline = Instant::now() + timeout;
        let label = self.label.clone();
        let timed_out = || {
            SshError::Timeout(format!(
                "{label}: the command did not finish within {}",
                net::secs(timeout)
            ))
        };
        let ctx = |e: SshError| match e {
            SshError::Timeout(_) => timed_out(),
            SshError::Lost(m) => SshError::Lost(format!("{label}: {m}")),
            SshError::Protocol(m) => SshError::Protocol(format!("{label}: {m}")),
            other => other,
        };
        let sock = &self.sock;
        let mut channel = run_nb(&mut self.sess, sock, deadline, "open channel", |s| {
            s.channel_session()
        })
        .map_err(ctx)?;
        run_nb(&mut self.sess, sock, deadline, "exec", |_| {
            channel.exec(cmd)
        })
        .map_err(ctx)?;

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        let (mut out_eof, mut err_eof) = (false, false);
        let mut spins = 0u8;
        loop {
            if Instant::now() >= deadline {
                return Err(timed_out());
            }
            let mut progressed = false;
            if !out_eof {
                match drain(&mut channel, &mut buf, &mut stdout) {
                    Ok((n, eof)) => {
                        progressed |= n > 0;
                        out_eof = eof;
                    }
                    Err(e) => return Err(ctx(classify_io(&e))),
                }
            }
            if !err_eof {
                match drain(&mut channel.stderr(), &mut buf, &mut stderr) {
                    Ok((n, eof)) => {
                        progressed |= n > 0;
                        err_eof = eof;
                    }
                    Err(e) => return Err(ctx(classify_io(&e))),
                }
            }
            if stdout.len().saturating_add(stderr.len()) > self.max_output {
                return Err(SshError::Protocol(format!(
                    "{label}: command output exceeds {} bytes",
                    self.max_output
                )));
            }
            if out_eof && err_eof {
                break;
            }
            if progressed {
                spins = 0;
            } else if (channel.eof() || channel.read_window().available > 0) && spins < 3 {
                // Reading one stream may have queued the other stream's data (or the EOF)
                // without any more bytes coming on the socket: read again before waiting.
                spins += 1;
            } else {
                spins = 0;
                wait_socket(&self.sess, sock, deadline).map_err(|_| timed_out())?;
            }
        }
        run_nb(&mut self.sess, sock, deadline, "close channel", |_| {
            channel.wait_close()
        })
        .map_err(ctx)?;
        let signal = channel
            .exit_signal()
            .ok()
            .and_then(|s| s.exit_signal)
            .filter(|s| !s.is_empty());
        let status = match &signal {
            Some(_) => None,
            None => channel.exit_status().ok(),
        };
        Ok(ExecOutput {
            status,
            signal,
            stdout,
            stderr,
        })
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        // Best effort, bounded: one non-blocking attempt to say goodbye.
        let _ = self.sess.disconnect(None, "bye", None);
    }
}

/// A session opened on first use (or handed over already open) and dropped after a
/// transport error, so that the next command reconnects: what an agent holds for one action.
pub struct LazySession {
    cfg: SshConfig,
    session: Option<SshSession>,
}

impl LazySession {
    /// Not connected yet: the first command connects.
    pub fn new(cfg: SshConfig) -> Self {
        LazySession { cfg, session: None }
    }

    /// Connects now (an agent's `connect` reports login errors before any action).
    pub fn connected(cfg: SshConfig) -> Result<Self, SshError> {
        let session = SshSession::connect(&cfg)?;
        Ok(LazySession {
            cfg,
            session: Some(session),
        })
    }

    /// Runs `cmd` within the configured command timeout, connecting first when needed. A
    /// transport error drops the session.
    pub fn exec(&mut self, cmd: &str) -> Result<ExecOutput, SshError> {
        let session = match self.session.as_mut() {
            Some(s) => s,
            None => self.session.insert(SshSession::connect(&self.cfg)?),
        };
        let r = session.exec(cmd, self.cfg.command_timeout);
        if r.is_err() {
            self.session = None;
        }
        r
    }
}

/// Reads what is available from one stream; returns (bytes read, eof).
fn drain(r: &mut impl Read, buf: &mut [u8], into: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let mut total = 0usize;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok((total, true)),
            Ok(n) => {
                into.extend_from_slice(buf.get(..n).unwrap_or_default());
                total = total.saturating_add(n);
                if total >= 1024 * 1024 {
                    return Ok((total, false));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((total, false)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs a libssh2 call in non-blocking mode until it completes, waiting on the socket.
fn run_nb<T>(
    sess: &mut ssh2::Session,
    sock: &TcpStream,
    deadline: Instant,
    step: &str,
    mut f: impl FnMut(&mut ssh2::Session) -> Result<T, ssh2::Error>,
) -> Result<T, SshError> {
    loop {
        match f(sess) {
            Ok(v) => return Ok(v),
            Err(e) if code(&e) == Some(E_EAGAIN) => wait_socket(sess, sock, deadline)?,
            Err(e) => return Err(classify(&e, step)),
        }
    }
}

/// Waits until the socket is ready in the direction libssh2 is blocked on, or the deadline.
fn wait_socket(sess: &ssh2::Session, sock: &TcpStream, deadline: Instant) -> Result<(), SshError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(SshError::Timeout("deadline reached".to_owned()));
    }
    let (flags, cap) = match sess.block_directions() {
        BlockDirections::Inbound => (PollFlags::POLLIN, remaining),
        BlockDirections::Outbound => (PollFlags::POLLOUT, remaining),
        BlockDirections::Both => (PollFlags::POLLIN | PollFlags::POLLOUT, remaining),
        // Should not happen after EAGAIN; do not spin.
        BlockDirections::None => (PollFlags::POLLIN, remaining.min(Duration::from_millis(5))),
    };
    let ms = u32::try_from(cap.as_millis().saturating_add(1)).unwrap_or(u32::MAX);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    if flags.contains(PollFlags::POLLIN) {
        // Acknowledge at once what arrives next. OpenSSH does not set TCP_NODELAY on
        // non-interactive sessions: right after authentication it sends hostkeys-00 and then
        // the channel-open confirmation, which Nagle holds back until our ACK of the first;
        // with the default delayed ACK that cost 40 ms per connection. Quick-ack mode is not
        // sticky (the kernel leaves it after a few segments), so it is re-armed before each
        // wait. Best effort: an error only means the old, slower behaviour.
        let _ = socket2::SockRef::from(sock).set_quickack(true);
    }
    let mut fds = [PollFd::new(sock.as_fd(), flags)];
    match poll(&mut fds, timeout) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(SshError::Lost(format!(
            "waiting for the socket: {}",
            e.desc()
        ))),
    }
}

fn code(e: &ssh2::Error) -> Option<i32> {
    match e.code() {
        ssh2::ErrorCode::Session(c) => Some(c),
        ssh2::ErrorCode::SFTP(_) => None,
    }
}

fn classify(e: &ssh2::Error, step: &str) -> SshError {
    let msg = format!("{step}: {}", e.message());
    // What broke, in words, with libssh2's own text after it.
    let lost = |what: &str| SshError::Lost(format!("{step}: {what} ({})", e.message()));
    match code(e) {
        Some(E_SOCKET_DISCONNECT) => lost("the host closed the connection"),
        Some(E_SOCKET_RECV | E_BANNER_RECV) => lost("the connection broke while receiving"),
        Some(E_SOCKET_SEND | E_BANNER_SEND) => lost("the connection broke while sending"),
        Some(E_CHANNEL_CLOSED) => lost("the host closed the channel"),
        Some(E_TIMEOUT | E_SOCKET_TIMEOUT) => SshError::Timeout(msg),
        Some(E_AUTHENTICATION_FAILED | E_PUBLICKEY_UNVERIFIED) => SshError::Auth(msg),
        Some(E_KEX_FAILURE) => SshError::Connect(msg),
        _ => SshError::Protocol(msg),
    }
}

fn classify_io(e: &std::io::Error) -> SshError {
    match e.kind() {
        ErrorKind::TimedOut => SshError::Timeout(net::io_words(e)),
        _ => SshError::Lost(format!(
            "the connection broke while reading the command's output ({})",
            net::io_words(e)
        )),
    }
}

/// Resolves (bounded by the deadline) and connects to each address in turn. `timeout` is the
/// whole budget the deadline came from (named in the message when it runs out).
fn tcp_connect(
    host: &str,
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, SshError> {
    let peer = net::peer(host, port);
    let no_answer = || {
        SshError::Timeout(format!(
            "no SSH answer from {peer} within {} (the TCP connection was not accepted)",
            net::secs(timeout)
        ))
    };
    let addrs = net::resolve(host, port, deadline).map_err(|e| match e {
        ResolveError::Failed(m) => SshError::Connect(format!("cannot resolve {host}: {m}")),
        ResolveError::TimedOut => SshError::Timeout(format!(
            "no address for {host} within {} (the name resolver did not answer)",
            net::secs(timeout)
        )),
    })?;
    let mut last = String::new();
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(no_answer());
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                last = format!("{}: timed out", net::peer(&addr.ip().to_string(), port));
            }
            Err(e) => {
                last = format!(
                    "connect to host {}: {}",
                    net::peer(&addr.ip().to_string(), port),
                    net::io_words(&e)
                );
            }
        }
    }
    if Instant::now() >= deadline {
        Err(no_answer())
    } else {
        Err(SshError::Connect(last))
    }
}

fn authenticate(
    sess: &mut ssh2::Session,
    sock: &TcpStream,
    deadline: Instant,
    cfg: &SshConfig,
    label: &str,
) -> Result<(), SshError> {
    let user = cfg.user.as_str();
    let tmo = |e: SshError| match e {
        SshError::Timeout(_) => SshError::Timeout(format!(
            "{label}: the login did not finish within {}",
            net::secs(cfg.connect_timeout)
        )),
        SshError::Lost(m) => SshError::Lost(format!("{label}, during the login: {m}")),
        other => other,
    };
    let methods = run_nb(sess, sock, deadline, "list auth methods", |s| {
        s.auth_methods(user).map(str::to_owned)
    });
    let methods = match methods {
        Ok(m) => m,
        Err(_) if sess.authenticated() => return Ok(()),
        Err(e) => return Err(tmo(e)),
    };
    let offers = |m: &str| methods.split(',').any(|x| x == m);
    let mut tried: Vec<&str> = Vec::new();
    let mut reason = String::new();
    let mut fail = |e: SshError| -> Result<(), SshError> {
        match e {
            SshError::Auth(m) | SshError::Protocol(m) => {
                reason = m;
                Ok(())
            }
            other => Err(tmo(other)),
        }
    };
    match &cfg.auth {
        SshAuth::Key { path, passphrase } => {
            if offers("publickey") {
                tried.push("publickey");
                let pass = passphrase.as_ref().map(Secret::expose);
                if let Err(e) = run_nb(sess, sock, deadline, "publickey", |s| {
                    s.userauth_pubkey_file(user, None, path, pass)
                }) {
                    fail(e)?;
                }
            }
        }
        SshAuth::Password(pw) => {
            if offers("password") {
                tried.push("password");
                if let Err(e) = run_nb(sess, sock, deadline, "password", |s| {
                    s.userauth_password(user, pw.expose())
                }) {
                    fail(e)?;
                }
            }
            if !sess.authenticated() && offers("keyboard-interactive") {
                tried.push("keyboard-interactive");
                let mut prompter = PasswordPrompter {
                    password: pw,
                    rounds: 0,
                };
                if let Err(e) = run_nb(sess, sock, deadline, "keyboard-interactive", |s| {
                    s.userauth_keyboard_interactive(user, &mut prompter)
                }) {
                    fail(e)?;
                }
            }
        }
    }
    if sess.authenticated() {
        Ok(())
    } else if tried.is_empty() {
        Err(SshError::Auth(format!(
            "{label}: the server offers no authentication method we can use (offered: {methods})"
        )))
    } else {
        if matches!(
            &cfg.auth,
            SshAuth::Key {
                passphrase: Some(_),
                ..
            }
        ) && reason.contains("private key")
        {
            reason.push_str(" (wrong passphrase?)");
        }
        let what = match &cfg.auth {
            SshAuth::Key { path, .. } => format!("key {}", path.display()),
            SshAuth::Password(_) => "password".to_owned(),
        };
        Err(SshError::Auth(format!(
            "{label}: the server did not accept the {what} (tried {}; the server offers {methods}; last error: {reason})",
            tried.join(", ")
        )))
    }
}

/// Answers the password to every non-echoing keyboard-interactive prompt.
struct PasswordPrompter<'a> {
    password: &'a Secret,
    rounds: u32,
}

impl KeyboardInteractivePrompt for PasswordPrompter<'_> {
    fn prompt<'b>(
        &mut self,
        _username: &str,
        _instructions: &str,
        prompts: &[Prompt<'b>],
    ) -> Vec<String> {
        self.rounds = self.rounds.saturating_add(1);
        prompts
            .iter()
            .map(|p| {
                if p.echo || self.rounds > 3 {
                    String::new()
                } else {
                    self.password.expose().to_owned()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_options() {
        let opts = |pairs: &[(&'static str, &str)]| {
            let values = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
            Options::new("fence_test", Vec::new(), values)
        };
        let c = SshConfig::from_options(&opts(&[
            ("ip", "esxi1"),
            ("username", "root"),
            ("password", "pw"),
            ("ipport", "2222"),
            ("host_key_fingerprint", "SHA256:x"),
            ("accept_new_host_key", "1"),
            ("login_timeout", "7"),
        ]))
        .unwrap();
        assert_eq!(c.port, 2222);
        assert_eq!(c.auth, SshAuth::Password(Secret::new("pw")));
        assert!(c.host_key.accept_new);
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        assert_eq!(c.command_timeout, Duration::from_secs(3));
        assert_eq!(c.known_hosts_name(), "[esxi1]:2222");
        let c = SshConfig::from_options(&opts(&[
            ("ip", "h"),
            ("username", "u"),
            ("password", "pp"),
            ("identity_file", "/k"),
        ]))
        .unwrap();
        assert!(matches!(
            c.auth,
            SshAuth::Key {
                passphrase: Some(_),
                ..
            }
        ));
        assert_eq!(c.known_hosts_name(), "h");
        assert!(SshConfig::from_options(&opts(&[("ip", "h"), ("username", "u")])).is_err());
        assert!(SshConfig::from_options(&opts(&[
            ("ip", "h"),
            ("username", "u"),
            ("password", "p"),
            ("ipport", "70000")
        ]))
        .is_err());
    }

    #[test]
    fn errors_never_carry_the_password_and_map_to_fence_errors() {
        let e = SshError::Auth("u@h: authentication failed with password".into());
        assert!(matches!(FenceError::from(e), FenceError::LoginDenied(_)));
        let e = SshError::Timeout("x".into());
        assert!(FenceError::from(e).is_transport());
    }
}
