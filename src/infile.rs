//! Reading a file that came from outside (a lab file, a fix file, a
//! result to compare, a broker config): only a regular file, never
//! blocking, and never more than a stated size. A path naming a FIFO, a
//! device such as `/dev/zero` or a directory is an error at once, where a
//! plain read would hang or fill the memory.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// A lab file, a fix file or a broker config: a page of TOML.
pub const MAX_TEXT: u64 = 1 << 20;
/// A result JSON (`summary.json` of a long run holds every step).
pub const MAX_JSON: u64 = 256 << 20;

/// The bytes of the regular file at `path`, at most `max` of them. `Err`
/// is a sentence for the user (the caller names the file or flag).
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    // O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        return Err(format!("{what}, not a regular file; give a file"));
    }
    if meta.len() > max {
        return Err(too_big(meta.len(), max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read stops at the limit too.
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64, max));
    }
    Ok(bytes)
}

/// As [`read`], as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> Result<String, String> {
    String::from_utf8(read(path, max)?)
        .map_err(|e| format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()))
}

fn too_big(len: u64, max: u64) -> String {
    format!(
        "{} bytes, more than the {} klab reads from such a file",
        len,
        if max >= 1 << 20 {
            format!("{} MiB", max >> 20)
        } else {
            format!("{max} bytes")
        }
    )
}

/// Makes a FIFO at `path` (tests: a file that is not a regular one).
#[cfg(test)]
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {path:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_a_bounded_size_are_read() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.toml");
        std::fs::write(&f, "x = 1\n").unwrap();
        assert_eq!(read_text(&f, MAX_TEXT).unwrap(), "x = 1\n");
        let e = read(&f, 3).unwrap_err();
        assert!(e.contains("6 bytes, more than the 3 bytes"), "{e}");
        // A FIFO nobody writes to: refused at once instead of waiting.
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        assert!(read(&fifo, MAX_TEXT).unwrap_err().contains("a FIFO"));
        assert!(
            read(Path::new("/dev/zero"), MAX_TEXT)
                .unwrap_err()
                .contains("a device")
        );
        assert!(
            read(d.path(), MAX_TEXT)
                .unwrap_err()
                .contains("a directory")
        );
        assert!(
            read(&d.path().join("none"), MAX_TEXT)
                .unwrap_err()
                .contains("cannot read")
        );
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text(&f, MAX_TEXT).unwrap_err().contains("UTF-8"));
    }
}
