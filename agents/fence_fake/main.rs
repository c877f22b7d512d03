//! fence_fake: a file-backed test agent (like upstream's fence_dummy) with plugs, power states
//! and injectable faults. Used by the protocol tests and the Pacemaker harness; not packaged.
//!
//! State file (`state_file`), one item per line:
//! `plug NAME on|off [ALIAS]`, `pending NAME on|off UNIX_MS` (a slow transition), and
//! `fault KIND` with KIND one of `hang` (device calls time out after `shell_timeout`),
//! `hang-hard` (device calls block for an hour: only the watchdog ends the run), `garbled`
//! (status answers are unrecognisable), `ignore-off`, `ignore-on`, `slow:SECONDS`,
//! `unreachable` (login fails after `login_timeout`).
//! Every invocation appends one line to `STATE_FILE.log`: action, plug and the sorted names of
//! the options received (never values).

use std::fs;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fencekit::protocol::agent::{ListFn, PlugFn};
use fencekit::protocol::options::opt;
use fencekit::{
    Agent, AgentInfo, Feature, FenceError, FenceResult, OptSpec, Options, Outlet, PowerState,
};

/// The `state_file` row.
const STATE_FILE_ROW: OptSpec = opt("state_file")
    .default(STATE_FILE)
    .value("[path]")
    .help("File holding the fake plugs, their power states and injected faults");

static OPTIONS: &[OptSpec] = &[STATE_FILE_ROW];

/// Default `state_file`.
const STATE_FILE: &str = "/tmp/fence_fake.state";

static INFO: AgentInfo = AgentInfo::new("fence_fake", "Fake fence agent for testing fencekit")
    .longdesc(
        "fence_fake keeps plugs and their power states in a file and can inject faults \
               (hangs, garbled output, ignored power-off, slow transitions). It exists to test \
               the fencekit protocol library and the Pacemaker harness; it fences nothing.",
    )
    .features(&[Feature::Plugs, Feature::Method])
    .options(OPTIONS);

#[derive(Debug, Clone)]
struct Plug {
    name: String,
    on: bool,
    alias: String,
    pending: Option<(bool, u128)>,
}

struct Fake {
    path: String,
    shell_timeout: Duration,
    plugs: Vec<Plug>,
    faults: Vec<String>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn parse_on(w: &str) -> Option<bool> {
    match w {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

impl Fake {
    fn load(&mut self) -> FenceResult<()> {
        let text = fs::read_to_string(&self.path).map_err(|e| {
            FenceError::LoginDenied(format!("cannot read state file {}: {e}", self.path))
        })?;
        self.plugs.clear();
        self.faults.clear();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["plug", name, st, rest @ ..] => {
                    if let Some(on) = parse_on(st) {
                        self.plugs.push(Plug {
                            name: name.to_string(),
                            on,
                            alias: rest.join(" "),
                            pending: None,
                        });
                    }
                }
                ["pending", name, st, at] => {
                    if let (Some(on), Ok(at)) = (parse_on(st), at.parse::<u128>()) {
                        if let Some(p) = self.plugs.iter_mut().find(|p| p.name == *name) {
                            p.pending = Some((on, at));
                        }
                    }
                }
                ["fault", kind] => self.faults.push(kind.to_string()),
                _ => {}
            }
        }
        let now = now_ms();
        for p in &mut self.plugs {
            if let Some((on, at)) = p.pending {
                if now >= at {
                    p.on = on;
                    p.pending = None;
                }
            }
        }
        Ok(())
    }

    fn save(&self) -> FenceResult<()> {
        let mut s = String::new();
        for p in &self.plugs {
            s.push_str(
                &format!(
                    "plug {} {} {}\n",
                    p.name,
                    if p.on { "on" } else { "off" },
                    p.alias
                )
                .replace(" \n", "\n"),
            );
        }
        for p in &self.plugs {
            if let Some((on, at)) = p.pending {
                s.push_str(&format!(
                    "pending {} {} {at}\n",
                    p.name,
                    if on { "on" } else { "off" }
                ));
            }
        }
        for f in &self.faults {
            s.push_str(&format!("fault {f}\n"));
        }
        let tmp = format!("{}.tmp", self.path);
        fs::write(&tmp, s)
            .and_then(|_| fs::rename(&tmp, &self.path))
            .map_err(|e| FenceError::ConnectionLost(format!("cannot write state file: {e}")))
    }

    fn has(&self, fault: &str) -> bool {
        self.faults.iter().any(|f| f == fault)
    }

    /// Simulates one device round trip, with the hang faults.
    fn device_call(&mut self) -> FenceResult<()> {
        self.load()?;
        if self.has("hang-hard") {
            sleep(Duration::from_secs(3600));
        }
        if self.has("hang") {
            sleep(self.shell_timeout);
            return Err(FenceError::TimedOut(format!(
                "no answer from the device within {} s",
                self.shell_timeout.as_secs_f64()
            )));
        }
        Ok(())
    }
}

fn log_invocation(opts: &Options) {
    let state_file = opts.get(&STATE_FILE_ROW).unwrap_or(STATE_FILE);
    let mut keys: Vec<&str> = opts
        .table()
        .iter()
        .filter(|s| opts.is_given(s))
        .map(|s| s.name)
        .collect();
    keys.sort_unstable();
    let line = format!(
        "action={} plug={} options={}\n",
        opts.action().map_or("?", |a| a.word()),
        opts.plug().unwrap_or(""),
        keys.join(",")
    );
    append_log(state_file, &line);
}

fn append_log(state_file: &str, line: &str) {
    let path = format!("{state_file}.log");
    let _ = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}

impl Agent for Fake {
    const LIST: Option<ListFn<Self>> = Some(Self::list);
    const CYCLE: Option<PlugFn<Self>> = Some(Self::cycle);

    fn info() -> &'static AgentInfo {
        &INFO
    }

    fn connect(opts: &Options) -> FenceResult<Self> {
        log_invocation(opts);
        let mut f = Fake {
            path: opts.get(&STATE_FILE_ROW).unwrap_or(STATE_FILE).to_string(),
            shell_timeout: opts.shell_timeout(),
            plugs: Vec::new(),
            faults: Vec::new(),
        };
        f.load()?;
        if f.has("unreachable") {
            sleep(opts.login_timeout());
            return Err(FenceError::LoginDenied(
                "no route to the fake device".into(),
            ));
        }
        Ok(f)
    }

    fn power_status(&mut self, plug: &str) -> FenceResult<PowerState> {
        self.device_call()?;
        if self.has("garbled") {
            return Err(FenceError::Status(
                "unrecognised answer '\u{fffd}\u{fffd} Powered s0mething'".into(),
            ));
        }
        let p = self
            .plugs
            .iter()
            .find(|p| p.name == plug)
            .ok_or_else(|| FenceError::PlugNotFound(format!("Plug {plug} does not exist")))?;
        Ok(if p.on {
            PowerState::On
        } else {
            PowerState::Off
        })
    }

    fn set_power(&mut self, plug: &str, state: PowerState) -> FenceResult<()> {
        self.device_call()?;
        let on = state == PowerState::On;
        append_log(
            &self.path,
            &format!("set {plug} {}\n", if on { "on" } else { "off" }),
        );
        if (!on && self.has("ignore-off")) || (on && self.has("ignore-on")) {
            return Ok(());
        }
        let slow = self
            .faults
            .iter()
            .find_map(|f| f.strip_prefix("slow:"))
            .and_then(|s| s.parse::<f64>().ok());
        let p = self
            .plugs
            .iter_mut()
            .find(|p| p.name == plug)
            .ok_or_else(|| FenceError::PlugNotFound(format!("Plug {plug} does not exist")))?;
        match slow {
            Some(secs) => p.pending = Some((on, now_ms() + (secs * 1000.0) as u128)),
            None => p.on = on,
        }
        self.save()
    }
}

/// What the device offers beyond on/off/status (the trait's `LIST`, `CYCLE`, `DIAG`).
impl Fake {
    fn list(&mut self, _with_status: bool) -> FenceResult<Vec<Outlet>> {
        self.device_call()?;
        let garbled = self.has("garbled");
        Ok(self
            .plugs
            .iter()
            .map(|p| Outlet {
                id: p.name.clone(),
                alias: p.alias.clone(),
                state: if garbled {
                    None
                } else if p.on {
                    Some(PowerState::On)
                } else {
                    Some(PowerState::Off)
                },
            })
            .collect())
    }

    fn cycle(&mut self, plug: &str) -> FenceResult<()> {
        self.device_call()?;
        if self.has("ignore-off") {
            return Err(FenceError::Device(
                "power cycle refused by the fake device".into(),
            ));
        }
        if self.plugs.iter().any(|p| p.name == plug) {
            Ok(())
        } else {
            Err(FenceError::PlugNotFound(format!(
                "Plug {plug} does not exist"
            )))
        }
    }
}

/// Entry point.
fn main() -> ExitCode {
    fencekit::protocol::run::run::<Fake>()
}
