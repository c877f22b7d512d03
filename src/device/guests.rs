//! A KVM guest across its hosts: where it runs, asked of every host at once with virsh, and the
//! domain commands that act on it there (fence_kvmguest's orchestration, testable with fake
//! hosts).
//!
//! Guests live-migrate, so every host that may run one is asked ([`fanout::ask_named`]), and
//! [`virsh::locate`] applies the one rule to the answers: a host that cannot be asked makes the
//! verdict an error, never Off. virsh says `failed to get domain` for any failed lookup (not
//! defined, but also access denied or an RPC error), so "not found" is believed only when that
//! host's full list of domains, read on the same session, does not hold the guest
//! ([`confirm_absent`]).

use std::collections::HashMap;

use crate::device::fanout::{self, Named};
use crate::device::virsh::{
    self, ActionOutcome, GuestLocation, HostView, Reply, Virsh, VirshError,
};
use crate::protocol::agent::PowerState;
use crate::protocol::error::FenceError;
use crate::protocol::log;

/// What one host returned for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status, if the remote side sent one.
    pub exit: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// The answer as the virsh parsers read it.
    pub fn reply(&self) -> Reply<'_> {
        Reply::new(self.exit, &self.stdout, &self.stderr)
    }
}

/// A host virsh commands run on.
pub trait VirshHost: Named + Send {
    /// Runs one command line. A host that cannot be asked (no session, transport error) is
    /// an `Err`, never an answer.
    fn run(&mut self, cmd: &str) -> Result<Output, VirshError>;
}

/// Runs `cmd` on the hosts named, all at once; answers in the order of `names`. A host that
/// gave no answer at all is an error, never an absence that [`locate`] could read as "not
/// there".
pub fn on_hosts<H: VirshHost>(
    hosts: &mut [H],
    names: &[String],
    cmd: &str,
) -> Vec<(String, Result<Output, VirshError>)> {
    fanout::ask_named(
        hosts,
        names,
        |h| h.run(cmd),
        |_| {
            Err(VirshError::Unreachable(
                "the host was not asked (no result)".to_owned(),
            ))
        },
    )
}

/// Where `guest` is: every host of `names` (the mapped one first) asked at once with `virsh
/// dominfo` (state and managed-save image in one command), each "not found" confirmed by that
/// host's domain list, then [`virsh::locate`]'s verdict.
pub fn locate<H: VirshHost>(
    hosts: &mut [H],
    names: &[String],
    virsh: &Virsh,
    guest: &str,
) -> Result<GuestLocation, FenceError> {
    let cmd = virsh.dominfo(guest)?;
    let mut answers: Vec<(String, Result<HostView, VirshError>)> = on_hosts(hosts, names, &cmd)
        .into_iter()
        .map(|(h, r)| (h, r.and_then(|out| HostView::from_dominfo(&out.reply()))))
        .collect();
    let unsure = absent_unconfirmed(&answers);
    if !unsure.is_empty() {
        let lists: Vec<(String, Result<Vec<String>, VirshError>)> =
            on_hosts(hosts, &unsure, &virsh.list_names())
                .into_iter()
                .map(|(h, r)| (h, r.and_then(|out| virsh::parse_name_list(&out.reply()))))
                .collect();
        confirm_absent(guest, &mut answers, &lists);
    }
    for (h, a) in &answers {
        let seen = match a {
            Ok(v) => v.to_string(),
            Err(e) => e.to_string(),
        };
        log::debug(&format!("{h}: {guest}: {seen}"));
    }
    virsh::locate(guest, &answers)
}

/// The hosts whose answer is "not found": each must confirm it with its domain list.
pub fn absent_unconfirmed(answers: &[(String, Result<HostView, VirshError>)]) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, a)| matches!(a, Err(VirshError::NotFound)))
        .map(|(h, _)| h.clone())
        .collect()
}

/// Applies each host's domain list (`virsh list --all --name`) to its "not found" answer: it
/// stays "not found" only when the list was read and does not hold `guest`. A list that holds
/// it, a list that could not be read, or no list at all makes the answer an error: the guest
/// might run on that host.
pub fn confirm_absent(
    guest: &str,
    answers: &mut [(String, Result<HostView, VirshError>)],
    lists: &[(String, Result<Vec<String>, VirshError>)],
) {
    for (h, a) in answers.iter_mut() {
        if !matches!(a, Err(VirshError::NotFound)) {
            continue;
        }
        *a = match lists.iter().find(|(x, _)| x == h).map(|(_, l)| l) {
            Some(Ok(n)) if !n.iter().any(|x| x == guest) => Err(VirshError::NotFound),
            Some(Ok(_)) => Err(VirshError::Unrecognised(format!(
                "virsh could not look '{guest}' up, yet lists it"
            ))),
            Some(Err(e)) => Err(e.clone()),
            None => Err(VirshError::Unreachable(
                "its list of domains was not read".to_owned(),
            )),
        };
    }
}

/// Runs one domain command (`cmd`, built for `guest`) on the hosts named, all at once, and
/// checks each answer with `parse`. `what` (when given) says what a failure means, in front
/// of virsh's own words. The first failure is the error; the caller's read-back decides
/// whether the guest is off.
pub fn act<H: VirshHost>(
    hosts: &mut [H],
    names: &[String],
    guest: &str,
    cmd: &str,
    parse: fn(&Reply<'_>) -> Result<ActionOutcome, VirshError>,
    what: Option<&str>,
) -> Result<(), FenceError> {
    if names.is_empty() {
        return Ok(());
    }
    let mut first_err = None;
    for (h, r) in on_hosts(hosts, names, cmd) {
        if let Err(e) = r.and_then(|out| parse(&out.reply())) {
            log::debug(&format!("{h}: {e}"));
            first_err.get_or_insert_with(|| match (e, what) {
                // Gone between the lookup and the command (migrated away): not a bad plug;
                // the read-back decides.
                (VirshError::NotFound, _) => {
                    FenceError::Device(format!("{h}: '{guest}' is no longer on this host"))
                }
                (e, Some(what)) => FenceError::Device(format!("{h}: {what}: {e}")),
                (e, None) => FenceError::from(e),
            });
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// One host's `virsh list` rows by domain name.
type RowsByName<'a> = HashMap<&'a str, &'a virsh::ListRow>;

/// The power state of each guest of `guests` (guest-names), from one `virsh list --all` per
/// host, all hosts at once, each judged by [`virsh::locate`]: `None` where the answers do not
/// settle it (a host that did not answer, a guest defined nowhere). A guest missing from a
/// host's full list is absent there (the list is the confirmation).
pub fn power_states<H: VirshHost>(
    hosts: &mut [H],
    names: &[String],
    virsh: &Virsh,
    guests: &[&str],
) -> Vec<Option<PowerState>> {
    let tables: Vec<(String, Result<Vec<virsh::ListRow>, VirshError>)> =
        on_hosts(hosts, names, &virsh.list_all())
            .into_iter()
            .map(|(h, r)| (h, r.and_then(|o| virsh::parse_list_table(&o.reply()))))
            .collect();
    // Each host's rows by name: one hash lookup per guest and host (linear overall).
    let by_name: Vec<(&String, Result<RowsByName<'_>, &VirshError>)> = tables
        .iter()
        .map(|(h, t)| {
            let rows = t
                .as_ref()
                .map(|rows| rows.iter().map(|r| (r.name.as_str(), r)).collect());
            (h, rows)
        })
        .collect();
    guests
        .iter()
        .map(|guest| {
            let answers: Vec<(String, Result<HostView, VirshError>)> = by_name
                .iter()
                .map(|(h, t)| {
                    let st = match t {
                        Ok(rows) => match rows.get(guest) {
                            Some(r) => r
                                .state
                                .map(|state| HostView {
                                    state,
                                    managed_save: Some(r.saved),
                                })
                                .ok_or(VirshError::NoState),
                            None => Err(VirshError::NotFound),
                        },
                        Err(err) => Err((*err).clone()),
                    };
                    ((*h).clone(), st)
                })
                .collect();
            virsh::locate(guest, &answers).ok().map(|l| l.power())
        })
        .collect()
}

/// The hosts of `names` that do not answer `virsh version` with success, each with why: a
/// host that cannot be asked makes every status unusable.
pub fn unanswered<H: VirshHost>(hosts: &mut [H], names: &[String], virsh: &Virsh) -> Vec<String> {
    on_hosts(hosts, names, &virsh.version())
        .into_iter()
        .filter_map(|(h, r)| match r {
            Ok(out) if out.exit == Some(0) => None,
            Ok(out) => Some(match out.exit {
                Some(code) => format!("{h}: virsh version exited with status {code}"),
                None => format!("{h}: virsh version ended without an exit status"),
            }),
            Err(e) => Some(format!("{h}: {e}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host with fixed answers: `dominfo` gives the guest's state (`None`: not defined),
    /// `list` its domain list; `down` hosts cannot be asked at all.
    struct Fake {
        name: String,
        state: Option<&'static str>,
        /// The list of domains holds the guest even though dominfo failed to look it up.
        listed_anyway: bool,
        /// The list of domains cannot be read.
        list_fails: bool,
        down: bool,
        asked: Vec<String>,
    }

    impl Named for Fake {
        fn name(&self) -> &str {
            &self.name
        }
    }

    fn ok(text: &str) -> Output {
        Output {
            exit: Some(0),
            stdout: text.as_bytes().to_vec(),
            stderr: Vec::new(),
        }
    }

    impl VirshHost for Fake {
        fn run(&mut self, cmd: &str) -> Result<Output, VirshError> {
            self.asked.push(cmd.to_owned());
            if self.down {
                return Err(VirshError::Unreachable(
                    "Connection timed out: no SSH answer from 192.0.2.1 port 22 within 5 s"
                        .to_owned(),
                ));
            }
            if cmd.contains(" list --all --name") {
                if self.list_fails {
                    return Ok(Output {
                        exit: Some(1),
                        stdout: Vec::new(),
                        stderr: b"error: failed to connect to the hypervisor\n".to_vec(),
                    });
                }
                let mut names = "other\n".to_owned();
                if self.state.is_some() || self.listed_anyway {
                    names.push_str("g\n");
                }
                return Ok(ok(&format!("{names}\n")));
            }
            if cmd.contains(" list --all --managed-save") {
                let row = match self.state {
                    Some(st) => format!(" -    g      {st}\n"),
                    None => String::new(),
                };
                return Ok(ok(&format!(
                    " Id   Name   State\n--------------------\n -    other  shut off\n{row}\n"
                )));
            }
            if cmd.ends_with(" version") {
                return Ok(ok("Compiled against library: libvirt 9.0.0\n"));
            }
            if cmd.contains(" dominfo ") {
                return Ok(match self.state {
                    Some(st) => ok(&format!(
                        "Id:             -\nName:           g\n\
UUID:           6695eb01-f6a4-8304-79aa-97f2502e193f\nState:          {st}\n\
Persistent:     yes\nAutostart:      disable\nManaged save:   no\n\
Security model: none\nSecurity DOI:   0\n\n"
                    )),
                    None => Output {
                        exit: Some(1),
                        stdout: Vec::new(),
                        stderr: b"error: failed to get domain 'g'\n".to_vec(),
                    },
                });
            }
            if cmd.contains(" destroy ") {
                return Ok(ok("Domain 'g' destroyed\n\n"));
            }
            Err(VirshError::Unrecognised(cmd.to_owned()))
        }
    }

    fn fake(name: &str, state: Option<&'static str>) -> Fake {
        Fake {
            name: name.to_owned(),
            state,
            listed_anyway: false,
            list_fails: false,
            down: false,
            asked: Vec::new(),
        }
    }

    fn names(hosts: &[Fake]) -> Vec<String> {
        hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn where_is(hosts: &mut [Fake]) -> Result<GuestLocation, FenceError> {
        let n = names(hosts);
        locate(hosts, &n, &Virsh::new(virsh::DEFAULT_URI, false), "g")
    }

    #[test]
    fn off_when_every_host_answered_and_none_runs_it() {
        let mut hs = vec![
            fake("h1", Some("shut off")),
            fake("h2", None),
            fake("h3", None),
        ];
        let loc = where_is(&mut hs);
        assert_eq!(
            loc,
            Ok(GuestLocation::Off {
                defined_on: vec!["h1".to_owned()]
            })
        );
        // The hosts that could not look it up were asked for their list of domains.
        assert_eq!(
            hs.iter().map(|h| h.asked.len()).collect::<Vec<_>>(),
            [1, 2, 2]
        );
    }

    #[test]
    fn an_unreachable_host_is_an_error_never_off() {
        let mut hs = vec![fake("h1", Some("shut off")), fake("h2", None)];
        hs.push(Fake {
            down: true,
            ..fake("h3", None)
        });
        let loc = where_is(&mut hs);
        assert!(
            matches!(&loc, Err(FenceError::Status(m)) if m.contains("h3")),
            "{loc:?}"
        );
        // Even with the guest defined nowhere else.
        let mut hs = vec![fake("h1", None)];
        hs.push(Fake {
            down: true,
            ..fake("h2", None)
        });
        assert!(matches!(where_is(&mut hs), Err(FenceError::Status(_))));
    }

    #[test]
    fn running_on_two_hosts_names_both() {
        let mut hs = vec![
            fake("h1", Some("running")),
            fake("h2", Some("shut off")),
            fake("h3", Some("crashed")),
        ];
        let loc = where_is(&mut hs);
        assert_eq!(
            loc,
            Ok(GuestLocation::Running {
                hosts: vec!["h1".to_owned(), "h3".to_owned()],
                saved: Vec::new()
            })
        );
        assert_eq!(loc.map(|l| l.power()), Ok(PowerState::On));
        // A running guest is known on: an unreachable host elsewhere does not hide it.
        let mut hs = vec![fake("h1", Some("running"))];
        hs.push(Fake {
            down: true,
            ..fake("h2", None)
        });
        assert!(matches!(
            where_is(&mut hs),
            Ok(GuestLocation::Running { .. })
        ));
    }

    #[test]
    fn absence_counts_only_when_the_domain_list_agrees() {
        // Confirmed: not defined anywhere, and no list holds it.
        let mut hs = vec![fake("h1", None), fake("h2", None)];
        assert!(matches!(
            where_is(&mut hs),
            Err(FenceError::PlugNotFound(_))
        ));
        // Not confirmed: the lookup failed but the list holds it.
        let mut hs = vec![fake("h1", Some("shut off"))];
        hs.push(Fake {
            listed_anyway: true,
            ..fake("h2", None)
        });
        let loc = where_is(&mut hs);
        assert!(
            matches!(&loc, Err(FenceError::Status(m)) if m.contains("yet lists it")),
            "{loc:?}"
        );
        // Not confirmed: the list cannot be read.
        let mut hs = vec![fake("h1", Some("shut off"))];
        hs.push(Fake {
            list_fails: true,
            ..fake("h2", None)
        });
        assert!(matches!(where_is(&mut hs), Err(FenceError::Status(_))));
    }

    #[test]
    fn a_not_found_without_a_list_is_not_an_absence() {
        let mut answers = vec![
            ("h1".to_owned(), Err(VirshError::NotFound)),
            ("h2".to_owned(), Err(VirshError::NotFound)),
        ];
        assert_eq!(absent_unconfirmed(&answers), ["h1", "h2"]);
        confirm_absent("g", &mut answers, &[("h1".to_owned(), Ok(Vec::new()))]);
        assert_eq!(
            answers.first().map(|a| &a.1),
            Some(&Err(VirshError::NotFound))
        );
        assert_eq!(
            answers.get(1).map(|a| &a.1),
            Some(&Err(VirshError::Unreachable(
                "its list of domains was not read".to_owned()
            )))
        );
    }

    #[test]
    fn act_reports_the_first_failure_with_the_host() {
        let mut hs = vec![fake("h1", Some("running"))];
        hs.push(Fake {
            down: true,
            ..fake("h2", None)
        });
        let v = Virsh::new(virsh::DEFAULT_URI, false);
        let cmd = v.destroy("g").unwrap_or_default();
        let n = names(&hs);
        let r = act(&mut hs, &n, "g", &cmd, virsh::parse_destroy, None);
        assert!(matches!(&r, Err(FenceError::Device(_))), "{r:?}");
        let only_h1 = vec!["h1".to_owned()];
        assert_eq!(
            act(&mut hs, &only_h1, "g", &cmd, virsh::parse_destroy, None),
            Ok(())
        );
        assert_eq!(
            act(&mut hs, &[], "g", &cmd, virsh::parse_destroy, None),
            Ok(())
        );
    }

    #[test]
    fn list_states_and_monitor_never_guess() {
        let v = Virsh::new(virsh::DEFAULT_URI, false);
        let mut hs = vec![fake("h1", Some("shut off")), fake("h2", Some("running"))];
        let n = names(&hs);
        assert_eq!(
            power_states(&mut hs, &n, &v, &["g", "other", "nowhere"]),
            [Some(PowerState::On), Some(PowerState::Off), None]
        );
        assert!(unanswered(&mut hs, &n, &v).is_empty());
        // A host that cannot be asked: off is never concluded, and monitor names it.
        let mut hs = vec![fake("h1", Some("shut off"))];
        hs.push(Fake {
            down: true,
            ..fake("h2", None)
        });
        let n = names(&hs);
        assert_eq!(power_states(&mut hs, &n, &v, &["g", "other"]), [None, None]);
        let down = unanswered(&mut hs, &n, &v);
        assert_eq!(down.len(), 1);
        assert!(down.first().is_some_and(|d| d.starts_with("h2: ")));
    }
}
