//! The action engine: what `on`, `off`, `reboot`, `status`, `list`, `monitor` mean, on top of
//! the four calls of [`Agent`].
//!
//! Semantics follow fencing.py's `fence_action` (docs/protocol.md §2.2–2.3): the already-on/off
//! shortcut; set, wait `power_wait`, then poll until confirmed or `power_timeout`; `1 + retry_on`
//! attempts for `on`/`off`; reboot = off confirmed, then on with `retry_on` attempts, where a
//! failed on phase is still `Success: Rebooted` (an unpowered node is safe for the cluster).
//!
//! The one rule: an off is reported only when [`Agent::power_status`] returned `Off` for every
//! plug. A status error is never taken as off: while polling it is logged and polling goes on
//! until the deadline, then the action fails.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::protocol::action::Action;
use crate::protocol::agent::{Agent, Feature, Outlet, PowerState};
use crate::protocol::error::{FenceError, FenceResult};
use crate::protocol::log;
use crate::protocol::options::{self, Options};

/// What an action produced, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `status`: prints `Status: ON` (exit 0) or `Status: OFF` (exit 2).
    Status(PowerState),
    /// A `Success: …` line (exit 0).
    Success(&'static str),
    /// `Success: Rebooted` whose on phase failed: the line, plus an error logged (exit 0).
    RebootedWithoutOn(String),
    /// `list` / `list-status` lines.
    List {
        /// The plugs.
        outlets: Vec<Outlet>,
        /// Whether to print the state column.
        with_status: bool,
    },
    /// A `NOTICE: …` line on stdout (exit 0).
    Notice(&'static str),
    /// Nothing printed (exit 0).
    Silent,
}

/// Notice printed by `list` on agents without a list function (upstream wording).
pub const NO_LIST: &str = "NOTICE: List option is not working on this device yet";

/// Runs `action` with `opts` (already validated).
pub fn execute<A: Agent>(opts: &Options, action: Action) -> FenceResult<Outcome> {
    let info = A::info();
    let plug_agent = info.features.contains(&Feature::Plugs);
    let plugs = if plug_agent {
        opts.plugs()
    } else {
        vec![String::new()]
    };
    match action {
        Action::ValidateAll => Ok(Outcome::Silent),
        Action::List | Action::ListStatus => {
            let Some(list) = A::LIST else {
                return Ok(Outcome::Notice(NO_LIST));
            };
            let mut agent = A::connect(opts)?;
            let outlets = list(&mut agent, action == Action::ListStatus)?;
            Ok(Outcome::List {
                outlets,
                with_status: action == Action::ListStatus,
            })
        }
        Action::Monitor => {
            if plug_agent && A::LIST.is_none() {
                return Ok(Outcome::Notice(NO_LIST));
            }
            let mut agent = A::connect(opts)?;
            agent.monitor(opts)?;
            Ok(Outcome::Silent)
        }
        Action::Status => {
            let mut agent = A::connect(opts)?;
            combined_status(&mut agent, &plugs).map(Outcome::Status)
        }
        Action::On => {
            let mut agent = A::connect(opts)?;
            if combined_status(&mut agent, &plugs)? == PowerState::On {
                return Ok(Outcome::Success("Success: Already ON"));
            }
            if set_and_confirm(&mut agent, opts, &plugs, PowerState::On, 1 + retries(opts))? {
                Ok(Outcome::Success("Success: Powered ON"))
            } else {
                Err(FenceError::WaitingOn)
            }
        }
        Action::Off => {
            run_delay(opts);
            let mut agent = A::connect(opts)?;
            if combined_status(&mut agent, &plugs)? == PowerState::Off {
                return Ok(Outcome::Success("Success: Already OFF"));
            }
            if set_and_confirm(&mut agent, opts, &plugs, PowerState::Off, 1 + retries(opts))? {
                Ok(Outcome::Success("Success: Powered OFF"))
            } else {
                Err(FenceError::WaitingOff)
            }
        }
        Action::Reboot => {
            run_delay(opts);
            let mut agent = A::connect(opts)?;
            if A::CYCLE.is_some()
                && opts
                    .get(&options::METHOD)
                    .is_some_and(|m| m.eq_ignore_ascii_case("cycle"))
            {
                return reboot_cycle(&mut agent, opts, &plugs);
            }
            reboot_onoff(&mut agent, opts, &plugs)
        }
        Action::Diag if A::DIAG.is_some() => {
            let mut agent = A::connect(opts)?;
            for p in &plugs {
                if let Some(diag) = A::DIAG {
                    diag(&mut agent, p)?;
                }
            }
            Ok(Outcome::Success("Success: Rebooted"))
        }
        Action::Diag | Action::Metadata | Action::Manpage => Err(FenceError::Usage(format!(
            "Unrecognised action '{}'",
            action.word()
        ))),
    }
}

/// `retry_on`, bounded (the number of extra attempts of a power change).
pub(crate) fn retries(opts: &Options) -> u32 {
    opts.int(&options::RETRY_ON)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .min(100)
}

/// Sleeps `delay` seconds (off and reboot only, before the first device contact).
fn run_delay(opts: &Options) {
    let d = opts.secs(&options::DELAY);
    if !d.is_zero() {
        log::debug(&format!(
            "Delay {} second(s) before fencing",
            d.as_secs_f64()
        ));
        sleep(d);
    }
}

/// ON if any plug is on, OFF only if every plug read back off; any error is an error.
pub fn combined_status<A: Agent>(agent: &mut A, plugs: &[String]) -> FenceResult<PowerState> {
    let mut state = PowerState::Off;
    for p in plugs {
        if agent.power_status(p)? == PowerState::On {
            state = PowerState::On;
        }
    }
    Ok(state)
}

/// True when every plug reads back as `want`.
fn all_are<A: Agent>(agent: &mut A, plugs: &[String], want: PowerState) -> FenceResult<bool> {
    for p in plugs {
        if agent.power_status(p)? != want {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Sends `want` to every plug, waits `power_wait`, then polls until all plugs read back `want`
/// or `power_timeout` passes; up to `attempts` times. Ok(true) only on a confirmed read-back.
pub fn set_and_confirm<A: Agent>(
    agent: &mut A,
    opts: &Options,
    plugs: &[String],
    want: PowerState,
    attempts: u32,
) -> FenceResult<bool> {
    let power_wait = opts.secs(&options::POWER_WAIT);
    let timeout = opts.power_timeout();
    let pause = opts
        .secs(&options::STONITH_STATUS_SLEEP)
        .max(Duration::from_millis(10));
    let mut last_err: Option<FenceError> = None;
    for attempt in 1..=attempts {
        log::debug(&format!(
            "Power {} attempt {attempt} of {attempts}",
            want.word()
        ));
        for p in plugs {
            // A failed request is not the end: some devices report a failure for a change
            // they did make (ESXi 6.0 `Power off failed`), so the read-back decides.
            if let Err(e) = agent.set_power(p, want) {
                log::debug(&format!("Setting power {} failed: {e}", want.word()));
                if matches!(e, FenceError::PlugNotFound(_) | FenceError::Privileges(_)) {
                    return Err(e);
                }
                last_err = Some(e);
            }
        }
        if !power_wait.is_zero() {
            sleep(power_wait);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match all_are(agent, plugs, want) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => {
                    log::debug(&format!("Status poll failed: {e}"));
                    last_err = Some(e);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            sleep(pause.min(deadline - now));
        }
    }
    if let Some(e) = last_err {
        log::warn(&format!(
            "Power {} not confirmed; last error: {e}",
            want.word()
        ));
    }
    Ok(false)
}

fn reboot_onoff<A: Agent>(agent: &mut A, opts: &Options, plugs: &[String]) -> FenceResult<Outcome> {
    if combined_status(agent, plugs)? != PowerState::Off
        && !set_and_confirm(agent, opts, plugs, PowerState::Off, 1)?
    {
        return Err(FenceError::WaitingOff);
    }
    // The target is confirmed off: the fence is done. A failing on phase is only logged.
    let on_attempts = retries(opts);
    if on_attempts == 0 {
        return Ok(Outcome::Success("Success: Rebooted"));
    }
    match set_and_confirm(agent, opts, plugs, PowerState::On, on_attempts) {
        Ok(true) => Ok(Outcome::Success("Success: Rebooted")),
        Ok(false) => Ok(Outcome::RebootedWithoutOn(
            FenceError::WaitingOn.to_string(),
        )),
        Err(e) => Ok(Outcome::RebootedWithoutOn(format!(
            "{}: {e}",
            FenceError::WaitingOn
        ))),
    }
}

fn reboot_cycle<A: Agent>(agent: &mut A, opts: &Options, plugs: &[String]) -> FenceResult<Outcome> {
    // A target that is already off cannot be cycled by most devices (fence-agents #596):
    // it is already fenced, so power it on as an onoff reboot would.
    if combined_status(agent, plugs)? == PowerState::Off {
        return reboot_onoff(agent, opts, plugs);
    }
    let mut last = FenceError::TimedOut("power cycle was not acknowledged".into());
    for _ in 0..(1 + retries(opts)) {
        let mut ok = true;
        for p in plugs {
            let cycled = A::CYCLE.map_or_else(
                || {
                    Err(FenceError::Unsupported(
                        "method=cycle is not supported".into(),
                    ))
                },
                |cycle| cycle(agent, p),
            );
            if let Err(e) = cycled {
                last = e;
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(Outcome::Success("Success: Rebooted"));
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    //! The engine against an in-memory scripted agent.
    use super::*;
    use crate::protocol::agent::AgentInfo;
    use crate::protocol::options::table;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Script {
        state: PowerState0,
        calls: Vec<String>,
        ignore_off: bool,
        ignore_on: bool,
        status_error: bool,
    }
    #[derive(Default, Clone, Copy, PartialEq)]
    enum PowerState0 {
        #[default]
        On,
        Off,
    }

    thread_local! { static S: RefCell<Script> = RefCell::new(Script::default()); }

    struct Fake;
    static INFO: AgentInfo = AgentInfo {
        name: "fence_t",
        shortdesc: "t",
        longdesc: "t",
        vendor_url: "",
        features: &[],
        options: &[],
        defaults: &[],
        has_list: false,
        has_diag: false,
        needs_password: false,
    };
    impl Agent for Fake {
        fn info() -> &'static AgentInfo {
            &INFO
        }
        fn connect(_: &Options) -> FenceResult<Self> {
            Ok(Fake)
        }
        fn power_status(&mut self, _: &str) -> FenceResult<PowerState> {
            S.with(|s| {
                let mut s = s.borrow_mut();
                s.calls.push("status".into());
                if s.status_error {
                    return Err(FenceError::Status("garbled".into()));
                }
                Ok(match s.state {
                    PowerState0::On => PowerState::On,
                    PowerState0::Off => PowerState::Off,
                })
            })
        }
        fn set_power(&mut self, _: &str, st: PowerState) -> FenceResult<()> {
            S.with(|s| {
                let mut s = s.borrow_mut();
                s.calls.push(st.word().to_lowercase());
                match st {
                    PowerState::Off if !s.ignore_off => s.state = PowerState0::Off,
                    PowerState::On if !s.ignore_on => s.state = PowerState0::On,
                    _ => {}
                }
                Ok(())
            })
        }
        const CYCLE: Option<crate::protocol::agent::PlugFn<Self>> = Some(Self::cycle);
    }

    impl Fake {
        fn cycle(&mut self, _: &str) -> FenceResult<()> {
            S.with(|s| s.borrow_mut().calls.push("cycle".into()));
            Ok(())
        }
    }

    fn run_t<A: Agent>(o: &Options) -> FenceResult<Outcome> {
        execute::<A>(o, o.action().expect("a known action"))
    }

    fn opts(pairs: &[(&'static str, &str)]) -> Options {
        let mut v = BTreeMap::new();
        v.insert("power_timeout", "0.2".to_string());
        v.insert("stonith_status_sleep", "0.01".to_string());
        for (k, val) in pairs {
            v.insert(*k, val.to_string());
        }
        Options::new("fence_t", table(&INFO).unwrap(), v)
    }

    fn reset(f: impl FnOnce(&mut Script)) {
        S.with(|s| {
            *s.borrow_mut() = Script::default();
            f(&mut s.borrow_mut());
        });
    }
    fn calls() -> Vec<String> {
        S.with(|s| s.borrow().calls.clone())
    }

    #[test]
    fn reboot_from_on() {
        reset(|_| {});
        let r = run_t::<Fake>(&opts(&[("action", "reboot")])).unwrap();
        assert_eq!(r, Outcome::Success("Success: Rebooted"));
        assert_eq!(calls(), ["status", "off", "status", "on", "status"]);
    }

    #[test]
    fn off_already_off() {
        reset(|s| s.state = PowerState0::Off);
        let r = run_t::<Fake>(&opts(&[("action", "off")])).unwrap();
        assert_eq!(r, Outcome::Success("Success: Already OFF"));
    }

    #[test]
    fn ignored_off_is_a_failure_never_success() {
        reset(|s| s.ignore_off = true);
        assert_eq!(
            run_t::<Fake>(&opts(&[("action", "off")])),
            Err(FenceError::WaitingOff)
        );
        reset(|s| s.ignore_off = true);
        assert_eq!(
            run_t::<Fake>(&opts(&[("action", "reboot")])),
            Err(FenceError::WaitingOff)
        );
    }

    #[test]
    fn unknown_status_is_an_error_never_off() {
        reset(|s| s.status_error = true);
        assert!(matches!(
            run_t::<Fake>(&opts(&[("action", "status")])),
            Err(FenceError::Status(_))
        ));
        reset(|s| s.status_error = true);
        assert!(run_t::<Fake>(&opts(&[("action", "off")])).is_err());
    }

    #[test]
    fn reboot_on_failure_is_still_rebooted() {
        reset(|s| s.ignore_on = true);
        let r = run_t::<Fake>(&opts(&[("action", "reboot")])).unwrap();
        assert!(matches!(r, Outcome::RebootedWithoutOn(_)));
    }

    #[test]
    fn retry_on_counts() {
        reset(|s| {
            s.state = PowerState0::Off;
            s.ignore_on = true;
        });
        assert_eq!(
            run_t::<Fake>(&opts(&[("action", "on")])),
            Err(FenceError::WaitingOn)
        );
        assert_eq!(calls().iter().filter(|c| *c == "on").count(), 2);
        reset(|_| {});
        let r = run_t::<Fake>(&opts(&[("action", "reboot"), ("retry_on", "0")])).unwrap();
        assert_eq!(r, Outcome::Success("Success: Rebooted"));
        assert!(!calls().contains(&"on".to_string()));
    }

    #[test]
    fn cycle_method() {
        reset(|_| {});
        let r = run_t::<Fake>(&opts(&[("action", "reboot"), ("method", "cycle")])).unwrap();
        assert_eq!(r, Outcome::Success("Success: Rebooted"));
        assert_eq!(calls(), ["status", "cycle"]);
    }

    #[test]
    fn diag_without_the_capability() {
        reset(|_| {});
        assert_eq!(
            run_t::<Fake>(&opts(&[("action", "diag")])),
            Err(FenceError::Usage("Unrecognised action 'diag'".into()))
        );
    }
}
