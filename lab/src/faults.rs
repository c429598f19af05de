//! Faults and latency on the way to seasmoke, played by the proxy in front of its sshd (and by
//! seasmoke's authorized keys for [`Fault::AuthRefused`]).

use crate::files::write_atomic;
use crate::lab::{lock, Lab};
use crate::{failed, proxy, Result};
use std::fs;
use std::time::Duration;

/// A fault on the way to seasmoke. Each [`Lab::set_fault`] replaces the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Everything works.
    None,
    /// Nothing listens on seasmoke's port: connection refused. Live connections are cut.
    Down,
    /// The port accepts TCP and then never answers. Live connections freeze too (a black
    /// hole) until the fault is lifted.
    Tarpit,
    /// New connections reach an sshd with another host key: "host key verification failed".
    HostKeyChanged,
    /// The client key is no longer in seasmoke's authorized keys: "Permission denied".
    AuthRefused,
    /// Every connection open now stops passing data in both directions, its sockets left open
    /// (a half-open link: nothing is refused or closed, nothing arrives). New connections work.
    Stall,
}

impl Lab {
    /// Switches to fault `f` (replacing the current one). When that fails (the port cannot be
    /// bound again when leaving [`Fault::Down`]: another process took it), says why on stderr
    /// and [`Lab::fault`] keeps the previous fault; [`Lab::try_set_fault`] returns the error.
    pub fn set_fault(&self, f: Fault) {
        if let Err(e) = self.try_set_fault(f) {
            // Straight to the stderr handle, as for a skipped test: it must show.
            let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{e}\n").as_bytes());
        }
    }

    /// [`Lab::set_fault`], with a failure as an error.
    pub fn try_set_fault(&self, f: Fault) -> Result<()> {
        let mut cur = lock(&self.fault);
        let auth = self.dir.join("seasmoke/authorized_keys");
        let client_pub = fs::read_to_string(self.dir.join("client_key.pub")).unwrap_or_default();
        let keys = if f == Fault::AuthRefused {
            "# the client key was removed (Fault::AuthRefused)\n".to_string()
        } else {
            client_pub
        };
        write_atomic(&auth, &keys).map_err(|e| {
            failed(format!(
                "nixdispatch-lab: cannot write {}: {e}",
                auth.display()
            ))
        })?;
        let route = match f {
            Fault::None | Fault::AuthRefused | Fault::Stall => proxy::Route::Normal,
            Fault::Down => proxy::Route::Down,
            Fault::Tarpit => proxy::Route::Tarpit,
            Fault::HostKeyChanged => proxy::Route::Impostor,
        };
        self.proxy.set_route(route).map_err(|e| {
            failed(format!(
                "nixdispatch-lab: cannot listen on port {} again: {e}",
                self.proxy.port()
            ))
        })?;
        self.proxy.stall_live(f == Fault::Stall);
        *cur = f;
        Ok(())
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        *lock(&self.fault)
    }

    /// Sets the one-way delay in each direction (applies to data read from now on, also on
    /// live connections).
    pub fn set_latency(&self, d: Duration) {
        self.proxy.set_delay(d);
    }

    /// The current one-way delay.
    pub fn latency(&self) -> Duration {
        self.proxy.delay()
    }

    /// Caps the link to seasmoke at `bytes_per_sec` in each direction, all connections
    /// together (`None`: unlimited); applies to data sent from now on, live connections too.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.proxy.set_bandwidth(bytes_per_sec);
    }

    /// The cap set by [`Lab::set_bandwidth`] or [`LabOptions::bandwidth`](crate::LabOptions).
    pub fn bandwidth(&self) -> Option<u64> {
        self.proxy.bandwidth()
    }

    /// The proxy's loopback port (the one in the ssh config).
    pub fn builder_port(&self) -> u16 {
        self.proxy.port()
    }

    /// TCP connections the proxy accepted so far.
    pub fn builder_connections(&self) -> u64 {
        self.proxy.accepted()
    }

    /// Cuts every live connection to seasmoke (a network blip); new connections work.
    pub fn drop_builder_connections(&self) {
        self.proxy.drop_connections();
    }
}
