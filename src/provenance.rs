//! What a result ran on, beyond versions: the fingerprint of a lab's inputs.
//!
//! The fingerprint is the NAR hash of the lab's directory in Nix's SRI form
//! (`sha256-<base64>`), the same string `nix hash path DIR` prints, so a
//! class can tell that two laptops ran the same lab. NAR serialisation comes
//! from the `nix-nar` crate (the `nix-compat` name on crates.io is an empty
//! placeholder); the hash is SHA-256 over the NAR bytes.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// `sha256-...` of the NAR serialisation of `path`.
pub fn nar_hash_sri(path: &Path) -> std::io::Result<String> {
    let mut enc = nix_nar::Encoder::new(path)
        .map_err(|e| std::io::Error::other(format!("NAR-encoding {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = enc.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
    ))
}

/// The lab's fingerprint; None (with a log line) when it cannot be computed.
pub fn lab_fingerprint(dir: &Path) -> Option<String> {
    match nar_hash_sri(dir) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("no fingerprint for {}: {e}", dir.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_same_hash_and_any_change_shows() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::write(d.join("lab.toml"), "title = \"x\"\n").unwrap();
            std::fs::create_dir(d.join("sub")).unwrap();
            std::fs::write(d.join("sub/README.md"), "hi\n").unwrap();
        }
        let ha = nar_hash_sri(a.path()).unwrap();
        assert_eq!(ha, nar_hash_sri(b.path()).unwrap());
        assert!(ha.starts_with("sha256-") && ha.len() == 7 + 44, "{ha}");
        std::fs::write(b.path().join("sub/README.md"), "hi!\n").unwrap();
        assert_ne!(ha, nar_hash_sri(b.path()).unwrap());
    }
}
