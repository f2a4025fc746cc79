//! Reading input files with a size limit, checked while reading (a file that grows between a
//! size check and the read cannot get past the limit).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("cannot read: {0}")]
    Io(#[source] io::Error),
    /// A directory, device or other non-regular file.
    #[error("not a regular file")]
    NotAFile,
    /// Larger than allowed.
    #[error("{size} bytes, over the limit of {max}")]
    TooLarge {
        /// Size found (at least `max + 1`).
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// Read the regular file at `path`, at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let f = File::open(path).map_err(ReadError::Io)?;
    let meta = f.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(ReadError::Io)?;
    if data.len() as u64 > max {
        return Err(ReadError::TooLarge {
            size: data.len() as u64,
            max,
        });
    }
    Ok(data)
}

/// Write `data` to `path` as a whole or not at all: a temporary file beside it, flushed, then
/// renamed over it. Nothing is ever left half-written under the final name.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_kinds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"12345");
        assert!(matches!(
            read_bounded(&p, 4),
            Err(ReadError::TooLarge { size: 5, max: 4 })
        ));
        assert!(matches!(
            read_bounded(d.path(), 4),
            Err(ReadError::NotAFile)
        ));
        assert!(matches!(
            read_bounded(&d.path().join("missing"), 4),
            Err(ReadError::Io(_))
        ));
        assert_eq!(
            read_bounded(&p, 4).unwrap_err().to_string(),
            "5 bytes, over the limit of 4"
        );
    }
}
