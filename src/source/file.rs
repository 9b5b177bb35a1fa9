//! One file read whole, never more than a size limit: the limits of every
//! file clusterf reads, and the bounded read that enforces them (README.md,
//! "Input limits", lists them for operators).
//!
//! A read stops one byte past the limit: `/dev/zero` or a runaway pipe fails
//! after at most that many bytes, and a regular file larger than the limit
//! fails before a byte is read. A regular file is read into one buffer of
//! its size; what holds no size (a pipe) into chunks, joined at the end. This module opens what it is given (a pipe from `<(...)` is a
//! fine `--live` dump); walking a tree that may hold pipes is `dir`'s.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// A config or overlay file, a Git blob: [`crate::tree::FILE_LIMIT`].
pub use crate::tree::FILE_LIMIT;

/// An `ipvsadm -S -n` dump given as `--live FILE`. A dump of 100,000
/// services with 10 dests each is 57 MB.
pub const DUMP_LIMIT: u64 = 256 << 20;

/// A saved plan (`plan --out`, `apply plan.json`). The plan that adds
/// 100,000 services with 10 dests each is 682 MB.
pub const PLAN_LIMIT: u64 = 1 << 30;

/// A password, TLS certificate or key file, an SSH allowed-signers file.
pub const KEY_FILE_LIMIT: u64 = 4 << 20;

/// Reads the file at `path` whole, failing with an error of kind
/// `FileTooLarge` that names the limit (not the path: callers say which
/// file) when it holds more than `limit` bytes.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    if meta.is_file() && meta.len() > limit {
        return Err(too_large(limit));
    }
    let hint = if meta.is_file() { meta.len() } else { 0 };
    read_from(file, limit, hint)
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// Reads `reader` to its end, failing as [`read`] does past `limit` bytes.
/// `hint`: the expected size, 0 when unknown. A reader of the size hinted
/// is read into one buffer of that size; others into chunks of growing size
/// (none larger than 64 MiB) joined at the end, so that a failed read has
/// held at most the limit and one chunk.
pub fn read_from(reader: impl Read, limit: u64, hint: u64) -> io::Result<Vec<u8>> {
    const FIRST: u64 = 64 << 10;
    const LARGEST: u64 = 64 << 20;
    // One byte more than the limit tells "exactly the limit" from "more".
    let mut reader = reader.take(limit.saturating_add(1));
    let mut size = if hint > 0 {
        hint.saturating_add(1)
    } else {
        FIRST
    };
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut total: u64 = 0;
    loop {
        size = size.min(limit.saturating_add(1) - total).max(1);
        let mut chunk = Vec::new();
        chunk
            .try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))
            .map_err(io::Error::other)?;
        let n = (&mut reader).take(size).read_to_end(&mut chunk)? as u64;
        total += n;
        if total > limit {
            return Err(too_large(limit));
        }
        chunks.push(chunk);
        if n < size {
            break;
        }
        size = (size * 2).min(LARGEST);
    }
    if chunks.len() == 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    let mut out = Vec::new();
    out.try_reserve_exact(usize::try_from(total).unwrap_or(usize::MAX))
        .map_err(io::Error::other)?;
    for chunk in chunks {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The error of a file over its limit.
fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("larger than the limit of {}", size(limit)),
    )
}

/// A size for humans: `16 MiB`, `1 GiB`, `512 bytes`.
pub fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    crate::text::plural(bytes as usize, "byte")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_refuses_one_byte_more() {
        let data = vec![7u8; 1000];
        assert_eq!(read_from(&data[..], 1000, 0).unwrap(), data);
        let e = read_from(&data[..], 999, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than the limit of 999 bytes");
    }

    #[test]
    fn a_pipe_is_read_in_chunks_and_refused_past_the_limit() {
        let e = read_from(io::repeat(0), 1 << 20, 0).unwrap_err();
        assert_eq!(e.to_string(), "larger than the limit of 1 MiB");
        let limit = (1 << 20) + 3;
        let out = read_from(io::repeat(1).take(limit), limit, 0).unwrap();
        assert_eq!(out.len() as u64, limit);
        assert_eq!(out.capacity() as u64, limit);
    }

    #[test]
    fn a_regular_file_is_refused_by_its_size_and_read_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 4097]).unwrap();
        let e = read(&path, 4096).unwrap_err();
        assert_eq!(e.to_string(), "larger than the limit of 4 KiB");
        assert_eq!(read(&path, 4097).unwrap().len(), 4097);
        assert_eq!(read_text(&path, 4097).unwrap().len(), 4097);
        let e = read(dir.path(), 4097).unwrap_err();
        assert_eq!(e.to_string(), "is a directory");
    }

    #[test]
    fn dev_zero_fails_fast() {
        let start = std::time::Instant::now();
        let e = read(Path::new("/dev/zero"), 64 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn sizes_read_as_units() {
        assert_eq!(size(16 << 20), "16 MiB");
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(1500), "1500 bytes");
    }
}
