//! A command on a real pseudo-terminal, made by script(1): what it draws arrives in chunks, and
//! bytes written to its stdin are typed into the terminal (0x03 is a real Ctrl-C).

use std::io::Read;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};

/// A running `script` (see the module docs).
pub struct Terminal {
    pub child: Child,
    /// What is typed into the terminal.
    pub stdin: ChildStdin,
    /// What the terminal shows, as it comes.
    pub screen: Receiver<Vec<u8>>,
}

impl Terminal {
    /// Starts `script` (program, arguments, environment and directory set by the caller).
    pub fn start(mut script: Command) -> Terminal {
        let mut child = super::spawn(&mut script, Stdio::piped(), Stdio::piped(), Stdio::null());
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, screen) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            stdin,
            screen,
        }
    }
}
