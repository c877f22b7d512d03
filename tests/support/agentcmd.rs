//! Running the real agent binaries: argv or stdin, capture code/stdout/stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Path of a binary built by this package.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "fence_fake" => PathBuf::from(env!("CARGO_BIN_EXE_fence_fake")),
        other => {
            // Other agents are siblings of fence_fake in the target dir.
            let fake = PathBuf::from(env!("CARGO_BIN_EXE_fence_fake"));
            fake.with_file_name(other)
        }
    }
}

fn finish(mut cmd: Command, stdin: Option<&str>, envs: &[(&str, &str)]) -> Run {
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn agent");
    if let Some(text) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Runs with argv.
pub fn args(bin: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(bin);
    c.args(args);
    finish(c, None, &[])
}

/// Runs with argv and extra environment.
pub fn args_env(bin: &Path, a: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut c = Command::new(bin);
    c.args(a);
    finish(c, None, envs)
}

/// Runs in stdin mode (no argv).
pub fn stdin(bin: &Path, text: &str) -> Run {
    finish(Command::new(bin), Some(text), &[])
}

/// Runs in stdin mode with extra environment.
pub fn stdin_env(bin: &Path, text: &str, envs: &[(&str, &str)]) -> Run {
    finish(Command::new(bin), Some(text), envs)
}

/// The three input modes of upstream's fence_testing.py.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Stdin,
    Short,
    Long,
}

pub const MODES: [Mode; 3] = [Mode::Stdin, Mode::Short, Mode::Long];

/// An option: (stdin name, short letter, long name, value; `None` value = flag).
pub type Opt<'a> = (&'a str, Option<char>, &'a str, Option<&'a str>);

/// Runs `opts` in the given mode.
pub fn run_mode(bin: &Path, mode: Mode, opts: &[Opt<'_>]) -> Run {
    run_mode_env(bin, mode, opts, &[])
}

/// Runs `opts` in the given mode with extra environment.
pub fn run_mode_env(bin: &Path, mode: Mode, opts: &[Opt<'_>], envs: &[(&str, &str)]) -> Run {
    match mode {
        Mode::Stdin => {
            let text: String = opts
                .iter()
                .map(|(n, _, _, v)| format!("{n}={}\n", v.unwrap_or("1")))
                .collect();
            stdin_env(bin, &text, envs)
        }
        Mode::Short | Mode::Long => {
            let mut a: Vec<String> = Vec::new();
            for (_, short, long, v) in opts {
                match (mode, short) {
                    (Mode::Short, Some(c)) => {
                        a.push(format!("-{c}"));
                        if let Some(v) = v {
                            a.push(v.to_string());
                        }
                    }
                    _ => match v {
                        Some(v) => a.push(format!("--{long}={v}")),
                        None => a.push(format!("--{long}")),
                    },
                }
            }
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            args_env(bin, &refs, envs)
        }
    }
}

/// Whether an external tool is present; when missing, a failure if
/// [`super::simulators_required`], elsewhere a loud skip.
pub fn require(tool: &str) -> bool {
    super::have_tool(tool)
}
