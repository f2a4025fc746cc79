//! Writing the system partition: the base's system image copied into the image file with
//! O_DIRECT where the filesystem allows it, hashed on the way.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use homestick_image::disk::{AlignedBuf, SECTOR};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::error::{io_err, BuildError};
use crate::pipeline::{cancelled, Inputs};
use crate::BuildProgress;

/// Bytes per read of the system image; three such buffers are in flight at most.
const CHUNK: usize = 8 << 20;
/// Alignment of O_DIRECT writes (buffer address, length and file offset).
const DIRECT_ALIGN: usize = homestick_image::disk::DIRECT_ALIGN;

/// A chunk buffer whose data starts at a `DIRECT_ALIGN`ed address (O_DIRECT wants that).
struct Chunk {
    buf: AlignedBuf,
    /// Bytes of data in it.
    len: usize,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            buf: AlignedBuf::new(CHUNK),
            len: 0,
        }
    }

    fn data_mut(&mut self, len: usize) -> &mut [u8] {
        self.len = len;
        &mut self.buf[..len]
    }

    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The data padded with zeros to a multiple of `DIRECT_ALIGN` (the partition is padded
    /// with zeros anyway, and it ends on a MiB boundary).
    fn padded(&mut self) -> &[u8] {
        let end = self.len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        self.buf[self.len..end].fill(0);
        &self.buf[..end]
    }
}

/// Where the system partition's chunks go: the output opened again with O_DIRECT, so the
/// bytes go to the disk as they are written instead of piling up as dirty pages (which the
/// kernel makes the writer pay for), or, where the file system has no O_DIRECT (tmpfs), the
/// output itself.
fn direct_writer(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(path)
        .ok()
}

/// Copy system.img into the system partition in one pass: this thread reads and hashes each
/// chunk while a second thread writes the previous one. The hash is over the very buffers
/// written, plus the zero padding to the partition's end (the file already holds zeros there).
pub(crate) fn write_system(
    inp: &Inputs,
    out: &NamedTempFile,
    progress: &dyn BuildProgress,
) -> Result<[u8; 32], BuildError> {
    let src_path = &inp.base.system;
    let len = inp.base.system_len;
    let mut src =
        File::open(src_path).map_err(io_err(format!("opening {}", src_path.display())))?;
    let start = inp.layout.system.0 * SECTOR;
    let direct = direct_writer(out.path());
    let dst: &File = direct.as_ref().unwrap_or(out.as_file());
    progress.set_total(len);
    let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(2);
    let (free_tx, free_rx) = mpsc::channel::<Chunk>();
    for _ in 0..3 {
        // The reader is gone only after an error it returns; a spare buffer is not needed then.
        let _ = free_tx.send(Chunk::new());
    }
    let mut h = Sha256::new();
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<()> {
            use std::os::unix::fs::FileExt;
            let mut at = start;
            for mut chunk in full_rx {
                let n = chunk.len as u64;
                dst.write_all_at(chunk.padded(), at)?;
                at += n;
                // As above: a reader that stopped needs no buffer back.
                let _ = free_tx.send(chunk);
            }
            Ok(())
        });
        let mut done = 0u64;
        let read = (|| {
            while done < len {
                cancelled(progress)?;
                let Ok(mut chunk) = free_rx.recv() else { break };
                let buf = chunk.data_mut(((len - done) as usize).min(CHUNK));
                src.read_exact(buf)
                    .map_err(io_err(format!("reading {}", src_path.display())))?;
                h.update(chunk.data());
                done += chunk.len as u64;
                progress.advance(chunk.len as u64);
                if full_tx.send(chunk).is_err() {
                    break; // the writer stopped: its error is reported below
                }
            }
            Ok::<(), BuildError>(())
        })();
        drop(full_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
        read?;
        written.map_err(io_err("writing the system partition"))
    })?;
    let zeros = vec![0u8; 1 << 20];
    let mut pad = inp.layout.system_bytes() - len;
    while pad > 0 {
        let n = pad.min(zeros.len() as u64) as usize;
        h.update(&zeros[..n]);
        pad -= n as u64;
    }
    Ok(h.finalize().into())
}
