//! klab's record format and its HMAC-SHA256 tag.
//!
//! ```text
//! | filler (n - 64 bytes) | header (32 bytes) | tag (32 bytes) |
//! header = "KLB" version:u8 | flags:u8 reserved:[u8;3] | producer_id:u64 | seq:u64 | due_ns:u64
//! tag    = HMAC-SHA256(secret, filler || header)        (integers little-endian)
//! ```
//!
//! The filler comes first on purpose: it is the same for every record of one
//! producer and size, so both sides key the HMAC, absorb the filler once and
//! clone that state per record. The per-record cost is then one or two SHA-256
//! blocks whatever the record size. The consumer compares the filler with the
//! bytes it expects before it reuses the cached state; a record whose filler
//! differs is hashed in full, so every byte is still covered by the tag.
//!
//! An end-of-run marker uses the same layout with the END flag and a 32-byte
//! body in place of the filler (see [`MarkerBody`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;

type HmacSha256 = Hmac<Sha256>;

pub const MAGIC: &[u8; 3] = b"KLB";
pub const VERSION: u8 = 1;
const HEADER_LEN: usize = 32;
const TAG_LEN: usize = 32;
const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
const MARKER_BODY_LEN: usize = 32;
const MARKER_LEN: usize = MARKER_BODY_LEN + OVERHEAD;

/// Sent during warm-up: measured, not counted in the headline figures.
pub const FLAG_WARMUP: u8 = 1;
/// End-of-run marker, one per partition.
const FLAG_END: u8 = 2;

/// The shared secret. From `KLAB_SECRET` when set, else random per run.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// `KLAB_SECRET` if set and non-empty, else 32 fresh random bytes.
    pub fn from_env_or_random() -> anyhow::Result<Secret> {
        match std::env::var_os("KLAB_SECRET") {
            Some(s) if !s.is_empty() => Ok(Secret(s.into_encoded_bytes())),
            _ => Secret::random(),
        }
    }

    pub fn random() -> anyhow::Result<Secret> {
        let mut b = vec![0u8; 32];
        getrandom::fill(&mut b)
            .map_err(|e| anyhow::anyhow!("no randomness for the secret: {e}"))?;
        Ok(Secret(b))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The filler a producer puts in front of its header: printable bytes
/// derived from its id, so it compresses like text rather than like zeros.
pub fn filler(producer_id: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut state = producer_id;
    while out.len() < len {
        state = crate::random::splitmix64(state);
        for b in state.to_le_bytes() {
            if out.len() == len {
                break;
            }
            out.push(b'a' + (b % 26));
        }
    }
    out
}

/// Writes the body of record `seq` of a JSON-payload producer into `out`:
/// newline-separated event log lines (`{"ts":..,"user":"u-004821",
/// "event":"page_view","path":"/shop/item/2291",...}`) drawn from a small
/// vocabulary by a generator seeded with the producer and the sequence, cut
/// to exactly `out.len()` bytes. Every record differs, but the keys and
/// most values repeat from record to record, as in a real event log, so a
/// compressed batch shrinks about as such logs do (the unit test below
/// states how much with deflate).
pub fn json_body(producer_id: u64, seq: u64, out: &mut [u8]) {
    const EVENTS: &[&str] = &[
        "page_view",
        "page_view",
        "page_view",
        "click",
        "add_to_cart",
        "search",
        "checkout",
        "login",
    ];
    const PATHS: &[&str] = &[
        "/",
        "/shop",
        "/shop/item",
        "/shop/cart",
        "/search",
        "/account",
        "/help",
    ];
    const REGIONS: &[&str] = &[
        "eu-west-1",
        "eu-central-1",
        "us-east-1",
        "us-west-2",
        "ap-south-1",
    ];
    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0",
        "klab-mobile/4.2 (Android 15)",
    ];
    const STATUS: &[u16] = &[200, 200, 200, 200, 200, 201, 304, 404, 500];
    use std::io::Write;
    let mut state =
        crate::random::splitmix64(producer_id ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut next = move || {
        state = crate::random::splitmix64(state);
        state
    };
    let pick = |r: u64, n: usize| (r % n as u64) as usize;
    let len = out.len();
    let mut cur = std::io::Cursor::new(out);
    let mut line = 0u64;
    while (cur.position() as usize) < len {
        let (a, b, c) = (next(), next(), next());
        // A full cursor stops the writes: the last line is cut off there.
        let _ = writeln!(
            cur,
            "{{\"ts\":{},\"seq\":{},\"user\":\"u-{:06}\",\"session\":\"{:08x}\",\"event\":\"{}\",\"path\":\"{}/{}\",\"status\":{},\"ms\":{},\"region\":\"{}\",\"agent\":\"{}\"}}",
            1_764_000_000_000u64 + seq * 3 + line,
            seq,
            a % 50_000,
            (b >> 32) as u32,
            EVENTS[pick(b, EVENTS.len())],
            PATHS[pick(c, PATHS.len())],
            (c >> 16) % 5000,
            STATUS[pick(c >> 40, STATUS.len())],
            (a >> 40) % 900 + 3,
            REGIONS[pick(a >> 20, REGIONS.len())],
            AGENTS[pick(b >> 50, AGENTS.len())],
        );
        line += 1;
    }
}

/// The fixed fields of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub producer_id: u64,
    pub seq: u64,
    pub due_ns: u64,
}

impl Header {
    fn write(&self, out: &mut [u8]) {
        out[0..3].copy_from_slice(MAGIC);
        out[3] = VERSION;
        out[4] = self.flags;
        out[5..8].fill(0);
        out[8..16].copy_from_slice(&self.producer_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.due_ns.to_le_bytes());
    }

    fn read(h: &[u8]) -> Option<Header> {
        if h.len() != HEADER_LEN || &h[0..3] != MAGIC || h[3] != VERSION {
            return None;
        }
        Some(Header {
            flags: h[4],
            producer_id: u64::from_le_bytes(h[8..16].try_into().ok()?),
            seq: u64::from_le_bytes(h[16..24].try_into().ok()?),
            due_ns: u64::from_le_bytes(h[24..32].try_into().ok()?),
        })
    }
}

/// What an end-of-run marker tells the consumer about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerBody {
    pub partition: u32,
    /// How many partitions the producer wrote (and sent markers to).
    pub partitions: u32,
    /// Records the broker acknowledged on this partition.
    pub acked: u64,
    /// Records handed to the producer for this partition.
    pub sent: u64,
    /// Records acknowledged over all partitions.
    pub total_acked: u64,
}

impl MarkerBody {
    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.partition.to_le_bytes());
        out[4..8].copy_from_slice(&self.partitions.to_le_bytes());
        out[8..16].copy_from_slice(&self.acked.to_le_bytes());
        out[16..24].copy_from_slice(&self.sent.to_le_bytes());
        out[24..32].copy_from_slice(&self.total_acked.to_le_bytes());
    }

    fn read(b: &[u8]) -> Option<MarkerBody> {
        if b.len() != MARKER_BODY_LEN {
            return None;
        }
        Some(MarkerBody {
            partition: u32::from_le_bytes(b[0..4].try_into().ok()?),
            partitions: u32::from_le_bytes(b[4..8].try_into().ok()?),
            acked: u64::from_le_bytes(b[8..16].try_into().ok()?),
            sent: u64::from_le_bytes(b[16..24].try_into().ok()?),
            total_acked: u64::from_le_bytes(b[24..32].try_into().ok()?),
        })
    }
}

/// Builds the records of one producer into a reused buffer.
pub struct Encoder {
    producer_id: u64,
    payload: crate::model::Payload,
    key: HmacSha256,
    /// Keyed HMAC with the filler already absorbed.
    after_filler: HmacSha256,
    buf: Vec<u8>,
    marker: Vec<u8>,
}

impl Encoder {
    /// An encoder of [`crate::model::Payload::Fixed`] records.
    pub fn new(secret: &Secret, producer_id: u64, message_bytes: usize) -> Encoder {
        Encoder::with_payload(
            secret,
            producer_id,
            message_bytes,
            crate::model::Payload::Fixed,
        )
    }

    pub fn with_payload(
        secret: &Secret,
        producer_id: u64,
        message_bytes: usize,
        payload: crate::model::Payload,
    ) -> Encoder {
        assert!(
            message_bytes >= OVERHEAD,
            "message_bytes checked by Workload::validate"
        );
        let fill = filler(producer_id, message_bytes - OVERHEAD);
        let key = secret.mac();
        let mut after_filler = key.clone();
        after_filler.update(&fill);
        let mut buf = fill;
        buf.resize(message_bytes, 0);
        Encoder {
            producer_id,
            payload,
            key,
            after_filler,
            buf,
            marker: vec![0; MARKER_LEN],
        }
    }

    pub fn producer_id(&self) -> u64 {
        self.producer_id
    }

    /// The bytes of data record `seq`, valid until the next call.
    pub fn record(&mut self, seq: u64, due_ns: u64, flags: u8) -> &[u8] {
        let n = self.buf.len();
        let h = n - OVERHEAD;
        Header {
            flags,
            producer_id: self.producer_id,
            seq,
            due_ns,
        }
        .write(&mut self.buf[h..h + HEADER_LEN]);
        let mut mac = match self.payload {
            crate::model::Payload::Fixed => self.after_filler.clone(),
            crate::model::Payload::Json => {
                json_body(self.producer_id, seq, &mut self.buf[..h]);
                let mut m = self.key.clone();
                m.update(&self.buf[..h]);
                m
            }
        };
        mac.update(&self.buf[h..h + HEADER_LEN]);
        let tag = mac.finalize().into_bytes();
        self.buf[n - TAG_LEN..].copy_from_slice(&tag);
        &self.buf
    }

    /// The end-of-run marker for one partition.
    pub fn marker(&mut self, body: MarkerBody, due_ns: u64) -> &[u8] {
        body.write(&mut self.marker[..MARKER_BODY_LEN]);
        Header {
            flags: FLAG_END,
            producer_id: self.producer_id,
            seq: u64::MAX,
            due_ns,
        }
        .write(&mut self.marker[MARKER_BODY_LEN..MARKER_BODY_LEN + HEADER_LEN]);
        let mut mac = self.key.clone();
        mac.update(&self.marker[..MARKER_BODY_LEN + HEADER_LEN]);
        let tag = mac.finalize().into_bytes();
        self.marker[MARKER_BODY_LEN + HEADER_LEN..].copy_from_slice(&tag);
        &self.marker
    }
}

/// What the consumer makes of one record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Record(Header),
    Marker(Header, MarkerBody),
    /// klab's layout, but the tag does not match: tampered or another secret.
    Corrupt,
    /// Not klab's layout at all.
    Foreign,
}

/// Checks records against the secret, caching the filler state per
/// producer and size.
pub struct Decoder {
    key: HmacSha256,
    cache: HashMap<(u64, usize), (Vec<u8>, HmacSha256)>,
}

impl Decoder {
    pub fn new(secret: &Secret) -> Decoder {
        Decoder {
            key: secret.mac(),
            cache: HashMap::new(),
        }
    }

    pub fn decode(&mut self, value: Option<&[u8]>) -> Decoded {
        let Some(v) = value else {
            return Decoded::Foreign;
        };
        if v.len() < OVERHEAD {
            return Decoded::Foreign;
        }
        let n = v.len();
        let h = n - OVERHEAD;
        let Some(header) = Header::read(&v[h..h + HEADER_LEN]) else {
            return Decoded::Foreign;
        };
        let body = &v[..h];
        let tag = &v[n - TAG_LEN..];
        if header.flags & FLAG_END != 0 {
            let mut mac = self.key.clone();
            mac.update(&v[..n - TAG_LEN]);
            if mac.verify_slice(tag).is_err() {
                return Decoded::Corrupt;
            }
            return match MarkerBody::read(body) {
                Some(m) => Decoded::Marker(header, m),
                None => Decoded::Corrupt,
            };
        }
        let key = &self.key;
        let (fill, state) = self
            .cache
            .entry((header.producer_id, h))
            .or_insert_with(|| {
                let fill = filler(header.producer_id, h);
                let mut s = key.clone();
                s.update(&fill);
                (fill, s)
            });
        let mut mac = if fill.as_slice() == body {
            state.clone()
        } else {
            let mut m = self.key.clone();
            m.update(body);
            m
        };
        mac.update(&v[h..h + HEADER_LEN]);
        if mac.verify_slice(tag).is_ok() {
            Decoded::Record(header)
        } else {
            Decoded::Corrupt
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"test secret".to_vec())
    }

    #[test]
    fn record_round_trip() {
        let mut enc = Encoder::new(&secret(), 42, 1024);
        let mut dec = Decoder::new(&secret());
        for seq in [0u64, 1, 7, u64::MAX - 1] {
            let bytes = enc
                .record(seq, 1_000u64.wrapping_add(seq), FLAG_WARMUP)
                .to_vec();
            assert_eq!(bytes.len(), 1024);
            assert_eq!(
                dec.decode(Some(&bytes)),
                Decoded::Record(Header {
                    flags: FLAG_WARMUP,
                    producer_id: 42,
                    seq,
                    due_ns: 1_000u64.wrapping_add(seq)
                })
            );
        }
    }

    #[test]
    fn tag_is_a_real_hmac_over_filler_and_header() {
        let mut enc = Encoder::new(&secret(), 9, 200);
        let bytes = enc.record(3, 5, 0).to_vec();
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(b"test secret").unwrap();
        mac.update(&bytes[..200 - TAG_LEN]);
        assert_eq!(
            mac.finalize().into_bytes().as_slice(),
            &bytes[200 - TAG_LEN..]
        );
    }

    #[test]
    fn any_flipped_byte_is_corrupt() {
        let mut enc = Encoder::new(&secret(), 1, 128);
        let good = enc.record(5, 99, 0).to_vec();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            let mut dec = Decoder::new(&secret());
            let got = dec.decode(Some(&bad));
            // Flipping a magic/version byte makes it not ours at all.
            let in_magic = (128 - OVERHEAD..128 - OVERHEAD + 4).contains(&i);
            if in_magic {
                assert_eq!(got, Decoded::Foreign, "byte {i}");
            } else {
                assert_eq!(got, Decoded::Corrupt, "byte {i}");
            }
        }
    }

    #[test]
    fn other_secret_is_corrupt_and_noise_is_foreign() {
        let mut enc = Encoder::new(&Secret::new(b"other".to_vec()), 1, 100);
        let bytes = enc.record(1, 1, 0).to_vec();
        let mut dec = Decoder::new(&secret());
        assert_eq!(dec.decode(Some(&bytes)), Decoded::Corrupt);
        assert_eq!(dec.decode(Some(b"hello world")), Decoded::Foreign);
        assert_eq!(dec.decode(None), Decoded::Foreign);
        assert_eq!(dec.decode(Some(&[0u8; 64])), Decoded::Foreign);
    }

    #[test]
    fn marker_round_trip() {
        let mut enc = Encoder::new(&secret(), 77, 64);
        let body = MarkerBody {
            partition: 2,
            partitions: 3,
            acked: 1000,
            sent: 1001,
            total_acked: 3000,
        };
        let bytes = enc.marker(body, 123).to_vec();
        let mut dec = Decoder::new(&secret());
        match dec.decode(Some(&bytes)) {
            Decoded::Marker(h, b) => {
                assert_eq!(h.producer_id, 77);
                assert_eq!(b, body);
            }
            other => panic!("expected a marker, got {other:?}"),
        }
    }

    #[test]
    fn json_records_verify_and_differ() {
        let mut enc = Encoder::with_payload(&secret(), 3, 300, crate::model::Payload::Json);
        let mut dec = Decoder::new(&secret());
        let a = enc.record(1, 10, 0).to_vec();
        let b = enc.record(2, 20, 0).to_vec();
        assert_eq!(a.len(), 300);
        assert_ne!(a[..236], b[..236], "every record has its own body");
        assert!(
            a[..236].starts_with(b"{\"ts\":"),
            "{:?}",
            String::from_utf8_lossy(&a[..60])
        );
        for (bytes, seq) in [(&a, 1), (&b, 2)] {
            match dec.decode(Some(bytes)) {
                Decoded::Record(h) => assert_eq!(h.seq, seq),
                other => panic!("{other:?}"),
            }
        }
        let mut bad = b.clone();
        bad[5] ^= 1;
        assert_eq!(dec.decode(Some(&bad)), Decoded::Corrupt);
    }

    /// What "realistic compressibility" means here, measured with deflate
    /// (gzip's codec) over a batch of 1 KiB records: the JSON payload
    /// shrinks to about a quarter, like a web event log, while the fixed
    /// filler, identical in every record of a producer, all but vanishes.
    #[test]
    fn json_payload_compresses_like_a_log_and_fixed_like_nothing_real() {
        use std::io::Write;
        let ratio = |payload| {
            let mut enc = Encoder::with_payload(&secret(), 8, 1024, payload);
            let mut batch = Vec::new();
            for seq in 0..64 {
                batch.extend_from_slice(enc.record(seq, seq * 1000, 0));
            }
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&batch).unwrap();
            batch.len() as f64 / z.finish().unwrap().len() as f64
        };
        let json = ratio(crate::model::Payload::Json);
        let fixed = ratio(crate::model::Payload::Fixed);
        assert!((2.5..6.0).contains(&json), "json compresses {json:.2}x");
        assert!(fixed > 8.0, "fixed compresses {fixed:.2}x");
    }

    #[test]
    fn minimum_size_record_has_no_filler() {
        let mut enc = Encoder::new(&secret(), 5, OVERHEAD);
        let bytes = enc.record(1, 2, 0).to_vec();
        assert_eq!(bytes.len(), OVERHEAD);
        let mut dec = Decoder::new(&secret());
        assert!(matches!(dec.decode(Some(&bytes)), Decoded::Record(_)));
    }
}
