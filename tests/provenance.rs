//! The lab fingerprint equals what Nix itself prints (`nix hash path`, from
//! Debian's nix-bin: scripts/check-nix installs it).

use std::path::Path;
use std::process::Command;

fn nix_hash_path(dir: &Path) -> String {
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "hash",
            "path",
        ])
        .arg(dir)
        .output()
        .expect("`nix` (Debian's nix-bin) must be installed: scripts/test installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn fingerprint_matches_nix_hash_path_for_every_shipped_lab() {
    let labs = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let mut n = 0;
    for e in std::fs::read_dir(&labs).unwrap().flatten() {
        if e.path().join("lab.toml").is_file() {
            let ours = klab::provenance::nar_hash_sri(&e.path()).unwrap();
            assert_eq!(ours, nix_hash_path(&e.path()), "{}", e.path().display());
            n += 1;
        }
    }
    assert!(n >= 7);
}

#[test]
fn fingerprint_matches_for_awkward_trees() {
    // Executable bits, symlinks, empty files and nested directories all go
    // into a NAR; check each against Nix.
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("empty"), "").unwrap();
    std::fs::write(root.join("a/b/deep.txt"), "deep\n").unwrap();
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a/b/deep.txt", root.join("link")).unwrap();
    assert_eq!(
        klab::provenance::nar_hash_sri(&root).unwrap(),
        nix_hash_path(&root)
    );
}
