//! Binary caches that are away, for tests of what a run does with them: one that refuses every
//! connection ([`RefusedCache`]) and one that accepts and never answers ([`StalledCache`], a
//! captive portal or a hung server). Both on 127.0.0.1 only, both held for as long as the value
//! lives, so no other process can take the port in between.
//!
//! Seen here (2026-12-04, Nix 2.8 client): a refused substituter costs plain nix about 4.4 s per
//! run (four tries of `nix-cache-info` with back-off); a stalled one holds it for minutes
//! (`stalled-download-timeout` defaults to 300 s, then nix retries).

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A port on 127.0.0.1 that is bound but not listening: every connection is refused at once,
/// and no other process can bind it while this lives.
pub struct RefusedCache {
    _socket: OwnedFd,
    port: u16,
}

impl RefusedCache {
    /// Binds a free port without listening on it.
    pub fn start() -> io::Result<RefusedCache> {
        // SAFETY: plain socket calls on a descriptor this function owns; the address structs
        // are zeroed and filled as the kernel expects.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let socket = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            addr.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(socket.as_raw_fd(), std::ptr::addr_of!(addr).cast(), len) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut bound: libc::sockaddr_in = std::mem::zeroed();
            let mut len = len;
            if libc::getsockname(
                socket.as_raw_fd(),
                std::ptr::addr_of_mut!(bound).cast(),
                &mut len,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(RefusedCache {
                _socket: socket,
                port: u16::from_be(bound.sin_port),
            })
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A listening socket on 127.0.0.1 that is never accepted from: connections complete in the
/// kernel's backlog and requests are never answered.
pub struct StalledCache {
    listener: TcpListener,
}

impl StalledCache {
    /// Listens on a free port.
    pub fn start() -> io::Result<StalledCache> {
        Ok(StalledCache {
            listener: TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let port = self.listener.local_addr().map(|a| a.port()).unwrap_or(0);
        format!("http://127.0.0.1:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    fn port(url: &str) -> u16 {
        url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap()
    }

    #[test]
    fn the_refused_cache_refuses_and_the_stalled_one_says_nothing() {
        let refused = RefusedCache::start().unwrap();
        let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port(&refused.url()))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let stalled = StalledCache::start().unwrap();
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port(&stalled.url()))).unwrap();
        s.write_all(b"GET /nix-cache-info HTTP/1.1\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 16];
        let err = s.read(&mut buf).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
    }
}
