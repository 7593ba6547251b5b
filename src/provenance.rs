//! What a result ran on, beyond versions: the fingerprint of a lab's inputs.

use std::path::Path;

/// The NAR hash of a lab directory in Nix's SRI form (`sha256-...`), the
/// same string `nix hash path DIR` prints. None when it cannot be computed.
pub fn lab_fingerprint(_dir: &Path) -> Option<String> {
    None
}
