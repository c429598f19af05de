//! nix's internal-json log: every line parsed, fed to the monitor, and drawn each way a user
//! can see it (bars on an 80-column terminal, plain lines, JSON lines). Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixdispatch::monitor::Monitor;
use nixdispatch::render::{BarRenderer, JsonRenderer, PlainRenderer, Render, TermSize};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let renderers: Vec<Box<dyn Render + Send>> = vec![
        Box::new(
            BarRenderer::new(
                indicatif::ProgressDrawTarget::hidden(),
                Box::new(std::io::sink()),
                true,
                1,
            )
            .with_size(TermSize { cols: 80, rows: 24 }),
        ),
        Box::new(PlainRenderer::new(Box::new(std::io::sink()), 2)),
        Box::new(JsonRenderer::new(Box::new(std::io::sink()), 1)),
    ];
    let start = Instant::now();
    for renderer in renderers {
        let mut monitor = Monitor::new(renderer);
        monitor.set_header("remote", "fuzz");
        let mut now = start;
        for line in text.split('\n') {
            now += Duration::from_millis(7);
            monitor.feed_line(line, now);
            monitor.tick(now);
        }
        let _ = monitor.finish(now + Duration::from_secs(1));
    }
});
