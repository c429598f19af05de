//! What the benches share: a generated stream shaped like a big real nix log.

/// A deterministic stream of `n` lines shaped like a big real nix log.
pub fn generated(n: usize) -> Vec<String> {
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

/// The lines of the recordings in `tests/data` whose file name starts with `prefix` (all of
/// them for `""`), in file name order. A missing or empty recording stops the bench.
pub fn recorded(prefix: &str) -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/data exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no recordings {prefix}* in {dir}");
    let mut lines = Vec::new();
    for path in names {
        let text = std::fs::read(&path).expect("recording readable");
        assert!(!text.is_empty(), "{} is empty", path.display());
        lines.extend(String::from_utf8_lossy(&text).lines().map(str::to_owned));
    }
    lines
}
