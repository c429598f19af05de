//! Remote answers read with a cap: a builder or a cache that answers a gigabyte (a broken shell
//! profile, a hostile host) costs at most the cap, not the gigabyte.

use openssh::Stdio;
use std::process::Output;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most of a store query's answer kept (`nix path-info --json` of 1,000 paths with their
/// references and signatures is a few MiB).
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// The most of a probe's answer kept (`nix show-config` is tens of KiB).
pub const MAX_PROBE_ANSWER: usize = 1024 * 1024;

/// Runs `command` (stdin closed) and collects at most `max` bytes of its stdout and of its
/// stderr each; the rest is read and dropped, so the remote side never blocks on a full pipe.
pub async fn output(
    command: &mut openssh::Command<'_>,
    max: usize,
) -> Result<Output, openssh::Error> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await?;
    let stdout = child.stdout().take();
    let stderr = child.stderr().take();
    let (stdout, stderr) = futures::try_join!(capped(stdout, max), capped(stderr, max))
        .map_err(openssh::Error::ChildIo)?;
    let status = child.wait().await?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Reads `stream` to its end, keeping the first `max` bytes.
async fn capped(stream: Option<impl AsyncRead + Unpin>, max: usize) -> std::io::Result<Vec<u8>> {
    let Some(mut stream) = stream else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    (&mut stream)
        .take(max as u64)
        .read_to_end(&mut kept)
        .await?;
    tokio::io::copy(&mut stream, &mut tokio::io::sink()).await?;
    Ok(kept)
}

/// The most of one HTTP answer kept: narinfo and nix-cache-info are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// A response's body as text, cut at [`MAX_BODY`] bytes; the rest is not read.
pub async fn capped_text(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn an_endless_http_answer_is_cut() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                // The whole request first, as a server does: an answer that starts before the
                // request is read makes hyper see an unexpected message (a flaky test, not the
                // behaviour under test).
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    match std::io::Read::read(&mut conn, &mut byte) {
                        Ok(1) => request.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
                let chunk = vec![b'x'; 1 << 16];
                // Stops when the reader hangs up.
                while conn.write_all(&chunk).is_ok() {}
            }
        });
        let resp = reqwest::get(format!("http://127.0.0.1:{port}/x.narinfo"))
            .await
            .expect("response");
        let body = capped_text(resp).await.expect("body");
        assert_eq!(body.len(), MAX_BODY);
    }

    #[tokio::test]
    async fn capped_keeps_the_start_and_drains_the_rest() {
        let data = vec![7u8; 3 << 20];
        let kept = capped(Some(&data[..]), 1000).await.expect("read");
        assert_eq!(kept, vec![7u8; 1000]);
    }
}
