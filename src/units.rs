//! Parsing and printing of the small value types users type on the command
//! line and in lab files: durations ("10s", "500ms", "2m"), byte sizes
//! ("512m", "1g", "64k") and `key=value` pairs.
//!
//! Every parser returns a plain `String` error that says what is allowed; the
//! caller adds the flag or field name.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest duration klab takes anywhere (a flag, a lab file, a result
/// file): a week.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration read from a file as fractional seconds: `Err` unless it is
/// a number from 0 to [`MAX_DURATION`] (a crafted `1e300` would overflow).
pub fn duration_from_secs(secs: f64) -> Result<Duration, String> {
    if !(secs.is_finite() && (0.0..=MAX_DURATION.as_secs_f64()).contains(&secs)) {
        return Err(format!(
            "a duration must be 0 to {} seconds (a week), not {secs}",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A decimal number and the unit after it ("1.5s" → 1.5 and "s"); None
/// when the text does not start with a number.
pub fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    Some((num.parse().ok()?, unit))
}

/// Parses "250ms", "10s", "1.5s", "2m", "1h"; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let allowed = "a duration such as 500ms, 10s, 1.5s, 2m or 1h";
    if t.is_empty() {
        return Err(format!("empty value; expected {allowed}"));
    }
    let (value, unit) = number_and_unit(t).ok_or_else(|| format!("'{text}' is not {allowed}"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("'{text}' has an unknown unit; expected {allowed}")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{text}' is not {allowed}"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "'{text}' is longer than a week; expected {allowed}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Prints a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.as_micros().is_multiple_of(1000) {
        format!("{}us", d.as_micros())
    } else if !ms.is_multiple_of(1000) || ms == 0 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// A JVM memory size as `-Xmx` takes it: a number with an optional k/m/g
/// suffix (either case). Kept in bytes, printed back in the largest exact unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemSize(pub u64);

impl MemSize {
    const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;

    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn mib(n: u64) -> Self {
        MemSize(n * Self::MIB)
    }

    /// The spelling the JVM understands, e.g. `512m` or `1g`.
    pub fn jvm(self) -> String {
        let b = self.0;
        if b.is_multiple_of(Self::GIB) {
            format!("{}g", b / Self::GIB)
        } else if b.is_multiple_of(Self::MIB) {
            format!("{}m", b / Self::MIB)
        } else if b.is_multiple_of(Self::KIB) {
            format!("{}k", b / Self::KIB)
        } else {
            format!("{b}")
        }
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.jvm())
    }
}

impl FromStr for MemSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let allowed = "a size such as 256m, 512m or 1g (k, m, g suffixes)";
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(format!("'{text}' is not {allowed}"));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{text}' is not {allowed}"))?;
        let scale = match unit {
            "" => 1,
            "k" | "K" => Self::KIB,
            "m" | "M" => Self::MIB,
            "g" | "G" => Self::GIB,
            _ => return Err(format!("'{text}' has an unknown unit; expected {allowed}")),
        };
        n.checked_mul(scale)
            .map(MemSize)
            .ok_or_else(|| format!("'{text}' is too large"))
    }
}

impl Serialize for MemSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.jvm())
    }
}

impl<'de> Deserialize<'de> for MemSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Splits `key=value`. Keys are non-empty and contain no whitespace.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(format!("'{text}' is not of the form key=value"));
    };
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        return Err(format!(
            "'{text}' has an empty or malformed key; expected key=value"
        ));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// Serde helper: a `Duration` as fractional seconds in JSON and TOML.
/// Kernel clock ticks per second (the unit of /proc's CPU times).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

pub mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::duration_from_secs(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("9999h").is_err());
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_micros(250)), "250us");
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(format_duration(Duration::from_secs(7)), "7s");
    }

    #[test]
    fn durations_from_files_are_bounded() {
        assert_eq!(duration_from_secs(1.5), Ok(Duration::from_millis(1500)));
        for bad in [1e300, f64::MAX, -1.0, f64::NAN, 604_801.0] {
            assert!(duration_from_secs(bad).is_err(), "{bad}");
        }
        #[derive(serde::Deserialize)]
        struct W {
            #[serde(with = "duration_secs")]
            d: Duration,
        }
        let w: W = serde_json::from_str(r#"{"d": 2.5}"#).unwrap();
        assert_eq!(w.d, Duration::from_millis(2500));
        let e = serde_json::from_str::<W>(r#"{"d": 1e300}"#).err().unwrap();
        assert!(e.to_string().contains("a week"), "{e}");
    }

    #[test]
    fn mem_sizes() {
        assert_eq!("512m".parse::<MemSize>(), Ok(MemSize::mib(512)));
        assert_eq!("1G".parse::<MemSize>(), Ok(MemSize(MemSize::GIB)));
        assert_eq!("1024m".parse::<MemSize>().map(|m| m.jvm()), Ok("1g".into()));
        assert!("".parse::<MemSize>().is_err());
        assert!("lots".parse::<MemSize>().is_err());
        assert!("12t".parse::<MemSize>().is_err());
        assert!("1.5g".parse::<MemSize>().is_err());
        assert!("99999999999999999999g".parse::<MemSize>().is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("linger.ms=5"),
            Ok(("linger.ms".into(), "5".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("linger.ms").is_err());
        assert!(parse_key_value("=5").is_err());
        assert!(parse_key_value("a b=5").is_err());
    }
}
