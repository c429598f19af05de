//! sudo's own commands: ask for the password up front, check and refresh its timestamp.

use super::strings;
use crate::child::Invocation;

/// `sudo -v`: asks for the password now, on the terminal (see [`crate::run::sudo`]).
pub fn sudo_validate() -> Invocation {
    Invocation::plain("sudo", strings(&["-v"]))
}

/// `sudo -n true`: whether sudo runs without asking right now.
pub fn sudo_check() -> Invocation {
    Invocation::plain("sudo", strings(&["-n", "true"]))
}

/// `sudo -n -v`: refreshes sudo's timestamp, never a prompt.
pub fn sudo_refresh() -> Invocation {
    Invocation::plain("sudo", strings(&["-n", "-v"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::*;

    #[test]
    fn sudo_command_lines() {
        assert_eq!(words(&sudo_validate()), v(&["sudo", "-v"]));
        assert_eq!(words(&sudo_check()), v(&["sudo", "-n", "true"]));
        assert_eq!(words(&sudo_refresh()), v(&["sudo", "-n", "-v"]));
    }
}
