//! What goes to the remote shell: POSIX quoting of untrusted text and the `sudo -n` prefix.

/// `sudo -n ` (never prompts: a missing sudo rule fails at once) when `sudo` is set, else
/// nothing; goes in front of a remote command.
pub fn sudo_prefix(sudo: bool) -> &'static str {
    if sudo {
        "sudo -n "
    } else {
        ""
    }
}

/// Quotes `s` for a POSIX shell: `'...'` with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_is_posix_single_quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(x) `y` \\"), "'$(x) `y` \\'");
    }
}
