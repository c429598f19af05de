//! `cargo bench`: the log parser and the monitor's state update, on recorded and generated
//! nix logs, so a regression in the hot path of `nixdispatch monitor` shows as a number.
//!
//! The generated stream has the shape of a real large nix run: about 98% `Progress` results,
//! the rest activity starts and stops and build log lines.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nixdispatch::log::parse_line;
use nixdispatch::monitor::State;
use std::hint::black_box;
use std::time::Instant;

mod common;
use common::{generated, recorded};

fn bench(c: &mut Criterion) {
    for (name, lines) in [("generated", generated(20_000)), ("recorded", recorded(""))] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function("parse_line", |b| {
            b.iter(|| {
                for line in &lines {
                    black_box(parse_line(line));
                }
            })
        });
        let events: Vec<_> = lines.iter().map(|l| parse_line(l)).collect();
        group.bench_function("state_update", |b| {
            b.iter(|| {
                let mut state = State::new();
                let now = Instant::now();
                for event in &events {
                    black_box(state.update(event, now));
                }
                state
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
