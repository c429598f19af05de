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

/// A deterministic stream of `n` lines shaped like a big real nix log.
fn generated(n: usize) -> Vec<String> {
    let mut lines = Vec::with_capacity(n);
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 1000u64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while lines.len() < n {
        let r = rand() % 1000;
        if live.is_empty() || r < 5 {
            next_id += 1;
            lines.push(format!(
                "@nix {{\"action\":\"start\",\"fields\":[\"/nix/store/{:032x}-pkg-{next_id}\",\"https://cache.example\"],\"id\":{next_id},\"level\":3,\"parent\":0,\"text\":\"copying\",\"type\":108}}",
                u128::from(rand())
            ));
            live.push(next_id);
        } else if r < 10 && live.len() > 3 {
            let id = live.remove((rand() as usize) % live.len());
            lines.push(format!("@nix {{\"action\":\"stop\",\"id\":{id}}}"));
        } else {
            let id = live[(rand() as usize) % live.len()];
            if r < 20 {
                lines.push(format!(
                    "@nix {{\"action\":\"result\",\"fields\":[\"compiling foo.c {r}\"],\"id\":{id},\"type\":101}}"
                ));
            } else {
                let done = rand() % 10_000_000;
                lines.push(format!(
                    "@nix {{\"action\":\"result\",\"fields\":[{done},{},0,0],\"id\":{id},\"type\":105}}",
                    done * 2 + 1
                ));
            }
        }
    }
    lines
}

fn recorded() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/data exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read(&path).expect("recording readable");
        lines.extend(String::from_utf8_lossy(&text).lines().map(str::to_owned));
    }
    assert!(!lines.is_empty(), "no recordings in {dir}");
    lines
}

fn bench(c: &mut Criterion) {
    for (name, lines) in [("generated", generated(20_000)), ("recorded", recorded())] {
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
