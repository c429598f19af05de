//! A tiny HTTP/1.1 static file server on loopback: serves a `file://` binary cache directory the
//! way cache.nixos.org serves its bucket (GET and HEAD, 404 when absent, `Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What `nix copy --to file://` writes as `nix-cache-info`, served until it exists.
const CACHE_INFO: &str = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

pub struct HttpCache {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    link: Arc<Link>,
    accept: Option<JoinHandle<()>>,
}

/// The cap on the bytes the cache sends, shared by its connections.
#[derive(Default)]
struct Link {
    /// Bytes per second (0: unlimited).
    rate: AtomicU64,
    /// When the link is free again.
    free: Mutex<Option<Instant>>,
}

impl Link {
    /// Waits until `bytes` more have crossed the link at its rate.
    fn pass(&self, bytes: usize) {
        let rate = self.rate.load(Ordering::SeqCst);
        if rate == 0 {
            return;
        }
        let busy = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let done = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let start = free.map_or_else(Instant::now, |f| f.max(Instant::now()));
            *free = Some(start + busy);
            start + busy
        };
        let now = Instant::now();
        if done > now {
            thread::sleep(done - now);
        }
    }
}

impl HttpCache {
    pub fn start(root: PathBuf) -> std::io::Result<HttpCache> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let link = Arc::new(Link::default());
        let accept = {
            let (stop, log, link) = (stop.clone(), log.clone(), link.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (root, log, link) = (root.clone(), log.clone(), link.clone());
                    thread::spawn(move || {
                        let _ = serve(conn, &root, &log, &link);
                    });
                }
            })
        };
        Ok(HttpCache {
            port,
            stop,
            log,
            link,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Caps what the cache sends at `bytes_per_sec`, all connections together (`None`:
    /// unlimited). Applies to bodies sent from then on.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.link
            .rate
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    /// `METHOD /path STATUS` for every request served so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for HttpCache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            Duration::from_millis(500),
        );
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    root: &Path,
    log: &Mutex<Vec<String>>,
    link: &Link,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let file = resolve(root, path);
    let (status, body) = match (&*method, file) {
        // An empty cache is still a binary cache: nix asks for nix-cache-info before anything
        // is copied there, and warns "does not appear to be a binary cache" on a 404.
        ("GET" | "HEAD", Some(f)) if path.trim_matches('/') == "nix-cache-info" && !f.is_file() => {
            (
                "200 OK",
                Some(("text/x-nix-cache-info", CACHE_INFO.as_bytes().to_vec())),
            )
        }
        ("GET" | "HEAD", Some(f)) => match std::fs::File::open(&f) {
            Ok(mut fh) if f.is_file() => {
                let mut body = Vec::new();
                fh.read_to_end(&mut body)?;
                ("200 OK", Some((content_type(&f), body)))
            }
            _ => ("404 Not Found", None),
        },
        ("GET" | "HEAD", None) => ("404 Not Found", None),
        _ => ("405 Method Not Allowed", None),
    };
    if let Ok(mut l) = log.lock() {
        l.push(format!("{method} {path} {}", &status[..3]));
    }
    let (ctype, body) = body.unwrap_or(("text/plain", b"not found\n".to_vec()));
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        for chunk in body.chunks(64 * 1024) {
            link.pass(chunk.len());
            out.write_all(chunk)?;
        }
    }
    out.flush()?;
    let _ = out.shutdown(Shutdown::Write);
    Ok(())
}

/// Maps a URL path to a file under `root`, refusing anything that climbs out.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == ".." || seg == "." || seg.contains('\\') {
            return None;
        }
        p.push(seg);
    }
    Some(p)
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("narinfo") => "text/x-nix-narinfo",
        _ if p.file_name().is_some_and(|n| n == "nix-cache-info") => "text/x-nix-cache-info",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(port: u16, path: &str) -> String {
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("answer");
        answer
    }

    #[test]
    fn an_empty_cache_answers_nix_cache_info() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = HttpCache::start(dir.path().to_path_buf()).expect("start");
        let answer = get(cache.port(), "/nix-cache-info");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("StoreDir: /nix/store"), "{answer}");
        let missing = get(cache.port(), "/0000000000000000000000000000000a.narinfo");
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    }
}
