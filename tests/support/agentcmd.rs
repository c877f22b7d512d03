//! Running the real agent binaries: argv or stdin, capture code/stdout/stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
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

/// How an agent spells one of its options on argv: its short letter (if any) and long name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spelling {
    pub short: Option<char>,
    pub long: String,
}

/// An agent's option spellings by stdin name.
pub type Spellings = BTreeMap<String, Spelling>;

/// The agent's own option table, as its `-o metadata` states it (`<getopt mixed="-a,
/// --ip=[ip]"/>`): stdin name -> argv spelling. Read once per binary and process, so tests
/// never restate an agent's option letters.
pub fn spellings(bin: &Path) -> Arc<Spellings> {
    static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Arc<Spellings>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(t) = cache.lock().unwrap().get(bin) {
        return Arc::clone(t);
    }
    let r = args(bin, &["-o", "metadata"]);
    assert_eq!(r.code, 0, "{} -o metadata: {r:?}", bin.display());
    let table = Arc::new(parse_spellings(&r.stdout));
    assert!(
        !table.is_empty(),
        "{}: no getopt in metadata",
        bin.display()
    );
    cache
        .lock()
        .unwrap()
        .insert(bin.to_path_buf(), Arc::clone(&table));
    table
}

fn parse_spellings(xml: &str) -> Spellings {
    let mut out = BTreeMap::new();
    let mut name: Option<String> = None;
    for line in xml.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("<parameter name=\"") {
            name = rest.split('"').next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("<getopt mixed=\"") {
            let mixed = rest.split('"').next().unwrap_or_default();
            let (short, long) = match mixed.strip_prefix('-').filter(|m| !m.starts_with('-')) {
                Some(m) => (m.chars().next(), m.split_once(", ").map_or("", |(_, l)| l)),
                None => (None, mixed),
            };
            let long = long.trim_start_matches("--");
            let long = long.split(['=', ' ']).next().unwrap_or_default().to_owned();
            if let Some(n) = name.take() {
                out.insert(n, Spelling { short, long });
            }
        }
    }
    out
}

/// One option by its stdin name; `None` value = a flag.
pub type Named<'a> = (&'a str, Option<&'a str>);

/// Runs `opts` (by stdin name) in the given mode, spelled on argv as the agent's own table says
/// ([`spellings`]); a name the table lacks is passed as `--name-with-dashes` (the agent then
/// judges it).
pub fn run_named_env(bin: &Path, mode: Mode, opts: &[Named<'_>], envs: &[(&str, &str)]) -> Run {
    let table = spellings(bin);
    let spelled: Vec<(Option<char>, String)> = opts
        .iter()
        .map(|(n, _)| match table.get(*n) {
            Some(s) => (s.short, s.long.clone()),
            None => (None, n.replace('_', "-")),
        })
        .collect();
    let rows: Vec<Opt<'_>> = opts
        .iter()
        .zip(&spelled)
        .map(|((n, v), (short, long))| (*n, *short, long.as_str(), *v))
        .collect();
    run_mode_env(bin, mode, &rows, envs)
}

/// [`run_named_env`] without extra environment.
pub fn run_named(bin: &Path, mode: Mode, opts: &[Named<'_>]) -> Run {
    run_named_env(bin, mode, opts, &[])
}

/// Runs `opts` in the given mode. A short letter given here must be the one the agent's own
/// table gives that option ([`spellings`]): a restated letter cannot silently drift.
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
            if matches!(mode, Mode::Short) {
                let table = spellings(bin);
                for (n, short, _, _) in opts {
                    if let (Some(c), Some(s)) = (short, table.get(*n)) {
                        assert_eq!(
                            s.short,
                            Some(*c),
                            "{}: -{c} is not the agent's letter for {n}",
                            bin.display()
                        );
                    }
                }
            }
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
