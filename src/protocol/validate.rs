//! Input checks done before every action except metadata/manpage/help/version
//! (docs/protocol.md §1.9). Pure: never contacts a device.

use std::path::Path;

use crate::protocol::action::Action;
use crate::protocol::agent::{Agent, Feature};
use crate::protocol::options::{self, Kind, Options};

/// Every problem with the options, in upstream's order and wording (without `Failed: `).
pub fn problems<A: Agent>(opts: &Options, action: Action) -> Vec<String> {
    let info = A::info();
    let has = |f: Feature| info.features.contains(&f);
    let mut out = Vec::new();
    if action.is_document() {
        return out;
    }
    // Required rows, from the table: given, or with a default. `port_as_ip` (fence_ipmilan):
    // the plug is the device address.
    let plug_is_ip = opts.flag(&options::PORT_AS_IP) && opts.plug().is_some();
    let missing = |name: &str| {
        opts.table().iter().any(|s| {
            s.name == name
                && s.required
                && s.default.is_none()
                && !s.optional_for.contains(&action)
                && !(name == "ip" && plug_is_ip)
                && if name == "plug" {
                    opts.plugs().is_empty()
                } else {
                    !opts.is_given(s)
                }
        })
    };
    // Upstream's order and words for the well-known rows; the password rule sits between the
    // address and the plug as in fencing.py.
    if missing("username") {
        out.push("You have to set login name".to_string());
    }
    if missing("ip") {
        out.push("You have to enter fence address".to_string());
    }
    if info.needs_password
        && opts.password().is_none()
        && opts.given(&options::PASSWORD_SCRIPT).is_none()
        && !(has(Feature::Ssh) && opts.given(&options::IDENTITY_FILE).is_some())
    {
        out.push(if has(Feature::Ssh) {
            "You have to enter password, password script or identity file".to_string()
        } else {
            "You have to enter password or password script".to_string()
        });
    }
    if missing("plug") {
        out.push("You have to enter plug number or machine identification".to_string());
    }
    for spec in opts.table() {
        if !matches!(spec.name, "username" | "ip" | "plug") && missing(spec.name) {
            out.push(format!("You have to set --{}", spec.long()));
        }
    }
    if let Some(key) = opts.given(&options::IDENTITY_FILE) {
        if !Path::new(key).is_file() {
            out.push(format!("Identity file {key} does not exist"));
        }
    }
    for spec in opts.table() {
        let Some(v) = opts.given(spec) else {
            continue;
        };
        let long = spec.long();
        match spec.kind {
            Kind::Select(choices) if !choices.iter().any(|c| c.eq_ignore_ascii_case(v)) => {
                let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
                out.push(format!(
                    "You have to enter a valid choice for --{long} from the valid values: [{}]",
                    list.join(", ")
                ));
            }
            Kind::Second if crate::protocol::options::parse_secs(v).is_none() => {
                out.push(format!(
                    "The value you have entered for --{long} is not a valid time in seconds"
                ));
            }
            Kind::Int => {
                let ok = v.trim().parse::<i64>().map(|n| n >= 0).unwrap_or(false);
                if !ok {
                    out.push(format!(
                        "The value you have entered for --{long} is not a valid integer"
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some(p) = opts.int(&options::IPPORT) {
        if !(1..=65_535).contains(&p) {
            out.push("The value you have entered for --ipport is not a valid port".to_string());
        }
    }
    out.extend(A::validate(opts));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::agent::AgentInfo;
    use crate::protocol::error::FenceResult;
    use crate::protocol::options::table;
    use crate::PowerState;
    use std::collections::BTreeMap;

    struct T;
    static INFO: AgentInfo = AgentInfo {
        name: "fence_t",
        shortdesc: "t",
        longdesc: "t",
        vendor_url: "",
        features: &[
            Feature::Address,
            Feature::Login,
            Feature::Password,
            Feature::Ssh,
        ],
        options: &[],
        defaults: &[],
        has_list: false,
        has_diag: false,
        needs_password: true,
    };
    impl Agent for T {
        fn info() -> &'static AgentInfo {
            &INFO
        }
        fn connect(_: &Options) -> FenceResult<Self> {
            Ok(T)
        }
        fn power_status(&mut self, _: &str) -> FenceResult<PowerState> {
            Ok(PowerState::On)
        }
        fn set_power(&mut self, _: &str, _: PowerState) -> FenceResult<()> {
            Ok(())
        }
    }

    fn opts(pairs: &[(&'static str, &str)]) -> Options {
        let v: BTreeMap<&'static str, String> =
            pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Options::new("fence_t", table(&INFO).unwrap(), v)
    }

    fn check<A: Agent>(o: &Options) -> Vec<String> {
        problems::<A>(o, o.action().unwrap_or(Action::Reboot))
    }

    #[test]
    fn missing_address_and_login() {
        let p = check::<T>(&opts(&[("action", "status")]));
        assert_eq!(
            p,
            vec![
                "You have to set login name",
                "You have to enter fence address",
                "You have to enter password, password script or identity file",
            ]
        );
        let p = check::<T>(&opts(&[
            ("action", "status"),
            ("ip", "127.0.0.1"),
            ("username", "root"),
            ("password", "x"),
        ]));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn identity_file_must_exist_and_port_range() {
        let p = check::<T>(&opts(&[
            ("ip", "127.0.0.1"),
            ("username", "root"),
            ("identity_file", "/nonexistent/key"),
            ("ipport", "70000"),
        ]));
        assert!(p.contains(&"Identity file /nonexistent/key does not exist".to_string()));
        assert!(p.iter().any(|s| s.contains("not a valid port")));
    }

    #[test]
    fn metadata_needs_nothing() {
        assert!(check::<T>(&opts(&[("action", "metadata")])).is_empty());
    }

    struct Own;
    static OWN_INFO: AgentInfo = AgentInfo {
        name: "fence_own",
        shortdesc: "t",
        longdesc: "t",
        vendor_url: "",
        features: &[Feature::Plugs],
        options: &[
            crate::protocol::options::opt("off_command").required(),
            crate::protocol::options::opt("mode")
                .required()
                .default("x"),
        ],
        defaults: &[],
        has_list: true,
        has_diag: false,
        needs_password: false,
    };
    impl Agent for Own {
        fn info() -> &'static AgentInfo {
            &OWN_INFO
        }
        fn connect(_: &Options) -> FenceResult<Self> {
            Ok(Own)
        }
        fn power_status(&mut self, _: &str) -> FenceResult<PowerState> {
            Ok(PowerState::On)
        }
        fn set_power(&mut self, _: &str, _: PowerState) -> FenceResult<()> {
            Ok(())
        }
    }

    /// An agent's own required row is enforced from the table (a default satisfies it), and the
    /// plug is required except for the listing actions.
    #[test]
    fn required_rows_come_from_the_table() {
        let o = |pairs: &[(&'static str, &str)]| {
            let v: BTreeMap<&'static str, String> =
                pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
            Options::new("fence_own", table(&OWN_INFO).unwrap(), v)
        };
        assert_eq!(
            check::<Own>(&o(&[("action", "off")])),
            vec![
                "You have to enter plug number or machine identification",
                "You have to set --off-command"
            ]
        );
        assert_eq!(
            check::<Own>(&o(&[("action", "list")])),
            vec!["You have to set --off-command"]
        );
        assert!(check::<Own>(&o(&[
            ("action", "off"),
            ("plug", "a"),
            ("off_command", "x")
        ]))
        .is_empty());
        assert_eq!(
            check::<Own>(&o(&[
                ("action", "off"),
                ("plug", ","),
                ("off_command", "x")
            ])),
            vec!["You have to enter plug number or machine identification"]
        );
    }
}
