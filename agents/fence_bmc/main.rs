//! fence_bmc: fences physical machines through their BMC over IPMI 2.0 RMCP+ (or IPMI 1.5 with
//! MD5 for legacy BMCs), a drop-in peer of fence_ipmilan.
//!
//! fence_ipmilan's option names and defaults are kept, so an existing
//! `pcs stonith create … fence_ipmilan ip=… username=… password=… lanplus=1` works with
//! `fence_bmc` in its place. Differences: RMCP+ (`lanplus`) is the default, the cipher suite is
//! negotiated (strongest common one), no ipmitool child is started (the password is never on
//! any argv), and one IPMI session carries the whole action.

use std::process::ExitCode;

use fencekit::protocol::agent::PlugFn;
use fencekit::protocol::log;
use fencekit::protocol::options::{self, opt};
use fencekit::transport::ipmi::{ChassisOp, IpmiConfig, Privilege, Session, Version};
use fencekit::{Agent, AgentInfo, Feature, FenceResult, OptSpec, Options, PowerState};

/// The `target` row.
const TARGET: OptSpec = opt("target")
    .short('t')
    .value("[targetaddress]")
    .help("IPMI bridging target (ipmitool -t): not supported by fence_bmc; setting it is refused rather than silently fencing the BMC's own chassis");

static OPTIONS: &[OptSpec] = &[
    options::LANPLUS,
    options::CIPHER,
    options::PRIVLVL,
    opt("auth").short('A').select(&["md5", "password", "none"]).value("[auth]").help("IPMI Lan Auth type: accepted for compatibility with fence_ipmilan and ignored (IPMI 1.5 sessions use MD5; RMCP+ authenticates with the cipher suite)").ignored(),
    options::HEXADECIMAL_KG,
    opt("plug").legacy("port").short('n').value("[ip]").help("IP address or hostname of fencing device (together with --port-as-ip)"),
    options::PORT_AS_IP,
    opt("ipmitool_path").default("/usr/bin/ipmitool").value("[path]").help("Accepted for compatibility with fence_ipmilan and ignored: fence_bmc speaks IPMI itself").order(200).ignored(),
    opt("ipmitool_timeout").default("2").value("[timeout]").help("Accepted for compatibility with fence_ipmilan and ignored: fence_bmc resends on its own schedule within login_timeout").order(200).ignored(),
    opt("username").legacy("login").short('l').value("[name]").help("Login name (empty: the BMC's anonymous user)"),
    TARGET,
    options::USE_SUDO_IGNORED,
    options::SUDO_PATH_IGNORED,
    options::PLUG_SEPARATOR_IGNORED,
    options::TIMEOUT_IGNORED,
];

static INFO: AgentInfo = AgentInfo::new("fence_bmc", "Fence agent for IPMI over LAN (RMCP+)")
    .longdesc(
        "fence_bmc is a Power Fencing agent which can be used with machines controlled by \
IPMI. It speaks IPMI 2.0 RMCP+ itself (no ipmitool child, so the password never appears on any \
command line), negotiates the strongest cipher suite both ends support (17, 3, 16 or 2, in that order; 0, 1 \
and 15, which carry no integrity code, only when asked for), resends lost datagrams within login_timeout, matches every reply to its request and \
always closes its session. One session carries the whole action. It accepts fence_ipmilan's \
options, so it can replace fence_ipmilan in an existing configuration; lanplus (RMCP+) is the \
default, lanplus=0 selects IPMI 1.5 with MD5 authentication.\n\nWARNING: method=cycle trusts \
the BMC's acknowledgement of a power cycle; onoff (the default) reads the power state back.",
    )
    .vendor_url("https://www.intel.com/content/www/us/en/products/docs/servers/ipmi/ipmi-home.html")
    .features(&[
        Feature::Address,
        Feature::Login,
        Feature::Password,
        Feature::Method,
    ])
    .options(OPTIONS)
    .defaults(&[("ipport", "623"), ("power_wait", "2")]);

/// The options with `port_as_ip` applied: the plug is the BMC address.
fn device_options(opts: &Options) -> Options {
    let mut opts = opts.clone();
    if opts.flag(&options::PORT_AS_IP) {
        if let Some(ip) = opts.plug().map(str::to_string) {
            opts.set(&options::IP, ip);
        }
    }
    opts
}

/// One IPMI session, reopened after a transport failure.
struct Bmc {
    cfg: IpmiConfig,
    session: Option<Session>,
}

impl Bmc {
    fn session(&mut self) -> FenceResult<&mut Session> {
        match self.session {
            Some(ref mut s) => Ok(s),
            None => {
                log::debug("Opening a new IPMI session");
                Ok(self.session.insert(Session::open(&self.cfg)?))
            }
        }
    }

    fn control(&mut self, op: ChassisOp) -> FenceResult<()> {
        log::debug(&format!("Chassis Power Control: {}", op.name()));
        let r = self.session()?.chassis_control(op);
        if r.is_err() {
            self.session = None;
        }
        Ok(r?)
    }
}

impl Agent for Bmc {
    const CYCLE: Option<PlugFn<Self>> = Some(Self::cycle);
    const DIAG: Option<PlugFn<Self>> = Some(Self::diag);

    fn info() -> &'static AgentInfo {
        &INFO
    }

    fn connect(opts: &Options) -> FenceResult<Self> {
        let cfg = IpmiConfig::from_options(&device_options(opts))?;
        if cfg.version == Version::V20 {
            match cfg.cipher {
                Some(0) => log::warn(
                    "cipher suite 0 was asked for: no authentication, no integrity, no encryption \
(anyone on the network can send this BMC commands); use 3 or 17",
                ),
                Some(c @ (1 | 15)) => log::warn(&format!(
                    "cipher suite {c} was asked for: replies carry no integrity code (anyone on \
the network can forge the BMC's answers, including its power state); use 3 or 17"
                )),
                _ => {}
            }
        }
        let session = Session::open(&cfg)?;
        log::debug(&match session.cipher_suite() {
            Some(suite) => format!("IPMI session open (cipher suite {suite})"),
            None => "IPMI session open (IPMI 1.5, no cipher suite)".to_owned(),
        });
        Ok(Bmc {
            cfg,
            session: Some(session),
        })
    }

    /// The IPMI settings (cipher, privlvl, hexadecimal_kg, ipport, name and password lengths)
    /// are checked before any traffic, so `validate-all` reports them too.
    fn validate(opts: &Options) -> Vec<String> {
        if opts.given(&TARGET).is_some() {
            // Ignoring it would send the power commands to the BMC's own chassis instead.
            return vec!["IPMI bridging (target) is not supported by fence_bmc".to_string()];
        }
        let opts = device_options(opts);
        // A missing address, a bad privlvl choice or a bad ipport are reported by the generic
        // checks already; report each problem once.
        let bad_port = opts
            .get(&options::IPPORT)
            .is_some_and(|p| p.trim().parse::<u16>().map_or(true, |p| p == 0));
        let bad_priv = opts
            .get(&options::PRIVLVL)
            .is_some_and(|p| Privilege::parse(p.trim()).is_none());
        if opts.ip().is_none() || bad_port || bad_priv {
            return Vec::new();
        }
        match IpmiConfig::from_options(&opts) {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn power_status(&mut self, _plug: &str) -> FenceResult<PowerState> {
        let r = self.session()?.chassis_status();
        if r.is_err() {
            self.session = None;
        }
        Ok(r?)
    }

    fn set_power(&mut self, _plug: &str, state: PowerState) -> FenceResult<()> {
        self.control(match state {
            PowerState::On => ChassisOp::PowerUp,
            PowerState::Off => ChassisOp::PowerDown,
        })
    }
}

/// What the device offers beyond on/off/status (the trait's `LIST`, `CYCLE`, `DIAG`).
impl Bmc {
    fn cycle(&mut self, _plug: &str) -> FenceResult<()> {
        self.control(ChassisOp::PowerCycle)
    }

    fn diag(&mut self, _plug: &str) -> FenceResult<()> {
        self.control(ChassisOp::DiagInterrupt)
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            if let Err(e) = s.close() {
                log::debug(&format!("Close Session: {e}"));
            }
        }
    }
}

/// Entry point.
fn main() -> ExitCode {
    fencekit::protocol::run::run::<Bmc>()
}
