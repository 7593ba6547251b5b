//! Random numbers for ids and names (producer ids, topic names, cluster
//! ids, consumer groups) and the tuner's reproducible sequence. Nothing here
//! needs to be cryptographic; the HMAC secret draws its own bytes.

/// A random 64-bit number from the OS; if the OS has none to give, one
/// mixed from the clock and the process id (unique enough for names).
pub fn u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return splitmix64(t ^ u64::from(std::process::id()));
    }
    u64::from_le_bytes(b)
}

/// SplitMix64: a small, well-known mixing step. The tuner's random search
/// and the simulated surface iterate it from a seed, so a seed always gives
/// the same sequence.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` random bytes as lowercase hex.
pub fn hex(n: usize) -> String {
    let mut out = String::with_capacity(n * 2 + 16);
    while out.len() < n * 2 {
        out.push_str(&format!("{:016x}", u64()));
    }
    out.truncate(n * 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_a_fixed_sequence() {
        // The first output for seed 0 (the reference value of SplitMix64).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_ne!(splitmix64(1), splitmix64(2));
    }

    #[test]
    fn hex_has_the_asked_length() {
        assert_eq!(hex(32).len(), 64);
        assert!(hex(3).chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(u64(), u64());
    }
}
