//! The `.narinfo` files of binary caches: the few fields a plan needs.

use crate::store_path::StorePath;

/// What a cache says about one store path.
#[derive(Debug, Clone, PartialEq)]
pub struct NarInfo {
    /// `StorePath`.
    pub store_path: String,
    /// `References`, as full store paths.
    pub references: Vec<StorePath>,
    /// `Sig` lines: `keyname:base64`.
    pub signatures: Vec<String>,
    /// `CA`: content-addressed paths need no signature.
    pub ca: Option<String>,
    /// `NarSize`, bytes.
    pub nar_size: Option<u64>,
}

impl NarInfo {
    /// Parses narinfo text; `store_dir` turns the base names in `References` into full paths.
    /// Returns `None` when the text has no `StorePath` (not a narinfo).
    pub fn parse(text: &str, store_dir: &str) -> Option<NarInfo> {
        let mut info = NarInfo {
            store_path: String::new(),
            references: Vec::new(),
            signatures: Vec::new(),
            ca: None,
            nar_size: None,
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "StorePath" => info.store_path = value.to_owned(),
                "References" => {
                    info.references = value
                        .split_whitespace()
                        .filter_map(|base| StorePath::parse_in(store_dir, base).ok())
                        .collect()
                }
                "Sig" => info.signatures.push(value.to_owned()),
                "CA" if !value.is_empty() => info.ca = Some(value.to_owned()),
                "NarSize" => info.nar_size = value.parse().ok(),
                _ => {}
            }
        }
        (!info.store_path.is_empty()).then_some(info)
    }
}

/// Whether nix would accept a path with these signatures: any signature by a trusted key name,
/// or a content address, or `require-sigs = false`.
pub fn acceptable(
    signatures: &[String],
    ca: bool,
    trusted_key_names: &[&str],
    require_sigs: bool,
) -> bool {
    !require_sigs
        || ca
        || signatures
            .iter()
            .filter_map(|s| s.split_once(':').map(|(name, _)| name))
            .any(|name| trusted_key_names.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "StorePath: /nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-c\nURL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz\nCompression: xz\nFileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\nFileSize: 4029176\nNarHash: sha256:1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h\nNarSize: 18735072\nReferences: 9incy9bg56h0xskhrvsp948vyrwm5xiy-c mprq6n8lsbcxlwkmg7aal7ynrk5wrjsr-a\nDeriver: lp0nb03dqcf5r4b7k20j7z75nnqdyz3w-c.drv\nSig: cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==\n";

    #[test]
    fn parses_a_real_narinfo() {
        let info = NarInfo::parse(TEXT, "/nix/store").unwrap();
        assert_eq!(
            info.store_path,
            "/nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-c"
        );
        assert_eq!(info.references.len(), 2);
        assert_eq!(info.nar_size, Some(18735072));
        assert_eq!(info.signatures.len(), 1);
        assert!(acceptable(
            &info.signatures,
            false,
            &["cache.nixos.org-1"],
            true
        ));
        assert!(!acceptable(&info.signatures, false, &["other"], true));
        assert!(acceptable(&info.signatures, false, &["other"], false));
        assert!(acceptable(&[], true, &[], true));
    }

    #[test]
    fn not_a_narinfo() {
        assert_eq!(NarInfo::parse("<html>404</html>", "/nix/store"), None);
    }
}
