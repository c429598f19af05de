//! The local store: which of these paths are valid, in one `nix-store` call per batch.

use crate::nix::Nix;
use crate::store_path::StorePath;
use crate::Result;
use std::collections::BTreeSet;

/// Paths per `nix-store` invocation: far below any ARG_MAX, few calls even for huge closures.
const BATCH: usize = 2000;

/// Returns the subset of `paths` that is valid in the local store.
pub async fn valid_paths(nix: &Nix, paths: &[StorePath]) -> Result<BTreeSet<StorePath>> {
    let mut valid = BTreeSet::new();
    for batch in paths.chunks(BATCH) {
        let mut args = vec!["--check-validity".to_owned(), "--print-invalid".to_owned()];
        args.extend(batch.iter().map(|p| p.as_str().to_owned()));
        let out = nix.output("nix-store", &args).await?;
        let printed = String::from_utf8_lossy(&out);
        valid.extend(super::valid_in_batch(batch, &printed).into_iter().cloned());
    }
    Ok(valid)
}
