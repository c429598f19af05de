//! `cargo bench --bench monitor`: the monitor's state update as `nixdispatch monitor` runs it,
//! so a regression in its hot path shows as a number.
//!
//! - `monitor_recorded/nix_<version>_parse_and_update`: each nix version's recordings
//!   (tests/data) parsed and fed to the state, the outbox cleared after each change as
//!   [`nixdispatch::monitor::Monitor`] does.
//! - `monitor_stream/drive_1m_generated_lines`: a generated 1M-line log (about 98% `Progress`
//!   results, like a big real run) read from memory through [`nixdispatch::monitor::drive`]
//!   into the plain renderer writing nowhere: the whole of `nixdispatch monitor` but the
//!   process and the pipe.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nixdispatch::log::parse_line;
use nixdispatch::monitor::{drive, Monitor, State};
use nixdispatch::render::PlainRenderer;
use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;
use common::{generated, recorded};

/// Parse and update, one line at a time, as the monitor does for every line it reads.
fn feed(lines: &[String]) -> State {
    let mut state = State::new();
    let now = Instant::now();
    for line in lines {
        if state.update(&parse_line(line), now) {
            state.clear_happenings();
        }
    }
    state
}

fn recorded_streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("monitor_recorded");
    for version in ["2.8", "2.26", "2.34"] {
        let lines = recorded(&format!("nix-{version}-"));
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("nix_{version}_parse_and_update"), |b| {
            b.iter(|| black_box(feed(&lines)))
        });
    }
    group.finish();
}

fn big_stream(c: &mut Criterion) {
    const LINES: usize = 1_000_000;
    let mut log = Vec::new();
    for line in generated(LINES) {
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
    }
    let mut group = c.benchmark_group("monitor_stream");
    group.throughput(Throughput::Elements(LINES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("drive_1m_generated_lines", |b| {
        b.iter_batched(
            || log.clone(),
            |log| {
                let renderer = PlainRenderer::new(Box::new(std::io::sink()), 0);
                black_box(drive(
                    std::io::Cursor::new(log),
                    Monitor::new(Box::new(renderer)),
                ))
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, recorded_streams, big_stream);
criterion_main!(benches);
