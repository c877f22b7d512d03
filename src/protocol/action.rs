//! The action, parsed once at the boundary: every other module matches on [`Action`], never on
//! text. Spellings follow fencing.py: case-insensitive, `meta-data` is `metadata`.

use std::fmt;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Power on and confirm.
    On,
    /// Power off and confirm (the fence).
    Off,
    /// Off (confirmed), then on; or a device cycle with `method=cycle`.
    Reboot,
    /// Read the power state (exit 0 for ON, 2 for OFF).
    Status,
    /// List plugs.
    List,
    /// List plugs with their power states.
    ListStatus,
    /// Check that the device answers.
    Monitor,
    /// Print the metadata XML.
    Metadata,
    /// Print the man page.
    Manpage,
    /// Check the options without contacting the device.
    ValidateAll,
    /// Diagnostic interrupt (NMI).
    Diag,
}

/// Every action, in the order metadata lists them.
pub const ALL: [Action; 11] = [
    Action::On,
    Action::Off,
    Action::Reboot,
    Action::Status,
    Action::List,
    Action::ListStatus,
    Action::Monitor,
    Action::Metadata,
    Action::Manpage,
    Action::ValidateAll,
    Action::Diag,
];

impl Action {
    /// Parses a caller's word: `None` for an empty or unknown action (a usage error).
    pub fn parse(word: &str) -> Option<Action> {
        let w = word.trim().to_ascii_lowercase();
        if w == "meta-data" {
            return Some(Action::Metadata);
        }
        ALL.into_iter().find(|a| a.word() == w)
    }

    /// The canonical word (`list-status`).
    pub const fn word(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Reboot => "reboot",
            Action::Status => "status",
            Action::List => "list",
            Action::ListStatus => "list-status",
            Action::Monitor => "monitor",
            Action::Metadata => "metadata",
            Action::Manpage => "manpage",
            Action::ValidateAll => "validate-all",
            Action::Diag => "diag",
        }
    }

    /// Actions that print a document and never touch a device or validate options.
    pub const fn is_document(self) -> bool {
        matches!(self, Action::Metadata | Action::Manpage)
    }

    /// Actions that list plugs (and so need no plug).
    pub const fn is_listing(self) -> bool {
        matches!(self, Action::List | Action::ListStatus)
    }

    /// Actions that power the target off first (the `delay` option applies to them).
    pub const fn powers_off(self) -> bool {
        matches!(self, Action::Off | Action::Reboot)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_aliases() {
        for a in ALL {
            assert_eq!(Action::parse(a.word()), Some(a));
        }
        assert_eq!(Action::parse("STATUS"), Some(Action::Status));
        assert_eq!(Action::parse("meta-data"), Some(Action::Metadata));
        assert_eq!(Action::parse("Meta-Data"), Some(Action::Metadata));
    }

    #[test]
    fn empty_and_unknown_are_refused() {
        assert_eq!(Action::parse(""), None);
        assert_eq!(Action::parse("  "), None);
        assert_eq!(Action::parse("rebooot"), None);
        assert_eq!(Action::parse("list_status"), None);
    }
}
