//! Remote commands' output read with a cap: a builder that answers a gigabyte (a broken shell
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
