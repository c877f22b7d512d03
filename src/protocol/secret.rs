//! A string that never shows itself.
//!
//! Passwords, passphrases and BMC keys travel as `Secret`. Its `Debug` and `Display` print
//! `[set]` (as fence_ipmilan logs `-P [set]`), so a secret cannot reach a log line or an error
//! message by accident; code that really needs the bytes calls [`Secret::expose`].

use std::fmt;

/// A secret value (password, passphrase, key) with redacting formatting.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear value. Call only where the bytes go to the device, never into text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[set]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[set]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {s:#?}"), "[set] [set] [set]");
        assert_eq!(s.expose(), "hunter2");
    }
}
