//! Writing one stick and reading it back: the per-stick job.
//!
//! Order of writes: the partitions (from the ESP on), then the backup GPT at the stick's real
//! end, a flush, and only then the first MiB (protective MBR and primary GPT), and a flush.
//! A stick that fails before the end never has a valid primary GPT; on a failure the first and
//! last MiB are wiped as well, so it neither boots nor looks like a homestick.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homestick_image::disk::{AlignedBuf, Disk, FileDisk, SECTOR};
use homestick_image::gpt::{self, HEAD_BYTES, TAIL_BYTES};
use homestick_image::keys::TrustedKey;
use homestick_image::manifest::Manifest;
use homestick_image::policy::Expectations;
use homestick_image::set::{SetVerifier, StickSet};
use homestick_image::verify::{self, Progress, VerifyError};
use sha2::{Digest, Sha256};

/// Bytes per write: large and aligned, so USB sticks see few, big requests.
pub const CHUNK: usize = 4 << 20;
/// Retries of a write that failed as if the stick were gone ([`removed_kind`]) before it counts
/// as failed.
const RETRIES: u32 = 2;

/// Where a stick's bytes go: the seam between the flasher and the device (tests put faults
/// here).
pub trait Target: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Write at `offset` (O_DIRECT alignment: buffers from [`AlignedBuf`]); may write less.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Flush to the medium.
    fn sync(&self) -> io::Result<()>;
    /// A reader of what the medium now holds, not of any cache.
    fn read_back(&self) -> io::Result<Box<dyn Disk>>;
}

/// A block device opened for writing with O_EXCL (the kernel refuses if it is mounted or
/// otherwise claimed) and O_DIRECT (progress and speed are the stick's, not the page cache's).
/// It is the device that was checked, by device number, and the read-back reads that very
/// device.
#[derive(Debug)]
pub struct BlockTarget {
    file: File,
    path: PathBuf,
    size: u64,
    rdev: u64,
}

/// Whether `f` is the block device `dev` (major, minor).
fn is_device(f: &File, dev: (u64, u64)) -> io::Result<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = f.metadata()?;
    let got = homestick_sys::split_dev(m.rdev());
    if !m.file_type().is_block_device() || got != dev {
        return Err(io::Error::other(format!(
            "it is now device {}:{}, not the {}:{} that was checked (re-plugged or re-named?)",
            got.0, got.1, dev.0, dev.1
        )));
    }
    Ok(m.rdev())
}

impl BlockTarget {
    /// Open `path` for writing, exclusively; it must still be the block device `dev` (major,
    /// minor) that the refusal rules were checked on, and of `size` bytes.
    pub fn open(path: &Path, dev: (u64, u64), size: u64) -> io::Result<BlockTarget> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_EXCL | nix::libc::O_DIRECT)
            .open(path)?;
        let rdev = is_device(&file, dev)?;
        let real = file.seek(SeekFrom::End(0))?;
        if real != size {
            return Err(io::Error::other(format!(
                "it now has {real} bytes, not the {size} that were checked"
            )));
        }
        Ok(BlockTarget {
            file,
            path: path.to_path_buf(),
            size,
            rdev,
        })
    }
}

impl Target for BlockTarget {
    fn size(&self) -> u64 {
        self.size
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn read_back(&self) -> io::Result<Box<dyn Disk>> {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        self.file.sync_all()?;
        homestick_sys::flush_buffers(&self.file)?;
        use std::os::fd::AsRawFd;
        // Advice only: the reads are correct without it.
        let _ = posix_fadvise(
            self.file.as_raw_fd(),
            0,
            0,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
        // A fresh O_DIRECT descriptor (no page cache), taken only if it is the same device.
        let fresh = FileDisk::open_direct(&self.path)?;
        let dev = homestick_sys::split_dev(self.rdev);
        if fresh.rdev() != Some(self.rdev) || fresh.size() != self.size {
            return Err(io::Error::other(format!(
                "{} is no longer device {}:{}: the read-back would read another device",
                self.path.display(),
                dev.0,
                dev.1
            )));
        }
        Ok(Box::new(fresh))
    }
}

/// A checked image, ready to be written to many sticks: an image file, or one user's image of
/// a stick set (composed while it is written).
pub struct Image {
    /// Its path (a set's directory for a user's image).
    pub path: PathBuf,
    source: Arc<dyn Disk + Send + Sync>,
    /// The signed manifest.
    pub manifest: Manifest,
    /// SHA-256 of manifest.json as signed.
    pub manifest_sha256: [u8; 32],
    /// Where the image's backup GPT begins: the bytes before it (but the first MiB) are written
    /// as they are, the GPT is laid out for each stick.
    pub data_end: u64,
    keys: Vec<TrustedKey>,
    expect: Expectations,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("path", &self.path)
            .field("image_id", &self.manifest.image_id)
            .finish()
    }
}

/// Why an image cannot be flashed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Cannot be opened.
    #[error("{path}: {source}")]
    Io {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Not trusted, or not an image at all.
    #[error("{path}: {source}")]
    Verify {
        /// The image.
        path: PathBuf,
        /// What `verify` found.
        #[source]
        source: VerifyError,
    },
}

impl Image {
    /// Open and fully verify `path` against `keys` (signature, GPT, every hash) and `expect`.
    pub fn open(
        path: &Path,
        keys: Vec<TrustedKey>,
        expect: Expectations,
        progress: &dyn Progress,
    ) -> Result<Image, ImageError> {
        let io = |source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let disk = FileDisk::open(path).map_err(io)?;
        let v = verify::verify_with(&disk, &keys, &expect, progress).map_err(|source| {
            ImageError::Verify {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let st = verify::read_statement(&disk).map_err(|source| ImageError::Verify {
            path: path.to_path_buf(),
            source,
        })?;
        let m = v.manifest;
        // Everything before the image's backup GPT: the partitions and the zeros after them.
        let data_end = m.disk.min_size_bytes - TAIL_BYTES as u64;
        Ok(Image {
            path: path.to_path_buf(),
            source: Arc::new(FileDisk::open(path).map_err(io)?),
            manifest_sha256: Sha256::digest(&st.manifest).into(),
            manifest: m,
            data_end,
            keys,
            expect,
        })
    }

    /// `user`'s image of `set`, verified by `checker` (which reads the partitions the users
    /// share once) against `keys` and `expect`.
    pub fn from_set(
        set: &StickSet,
        user: &str,
        checker: &SetVerifier,
        keys: Vec<TrustedKey>,
        expect: Expectations,
        progress: &dyn Progress,
    ) -> Result<Image, ImageError> {
        let err = |source| ImageError::Verify {
            path: set.dir.clone(),
            source,
        };
        let (v, image) = checker
            .verify(set, user, &keys, &expect, progress)
            .map_err(err)?;
        let st = verify::read_statement(&image).map_err(err)?;
        let m = v.manifest;
        let data_end = m.disk.min_size_bytes - TAIL_BYTES as u64;
        Ok(Image {
            path: set.dir.clone(),
            source: Arc::new(image),
            manifest_sha256: Sha256::digest(&st.manifest).into(),
            manifest: m,
            data_end,
            keys,
            expect,
        })
    }

    /// Bytes a stick needs.
    pub fn min_size(&self) -> u64 {
        self.manifest.disk.min_size_bytes
    }
}

/// Phases of a stick, as [`StickState::phase`] holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Not started.
    Waiting = 0,
    /// Writing.
    Write = 1,
    /// Reading back and checking.
    Verify = 2,
    /// Verified: may be unplugged.
    Good = 3,
    /// Failed.
    Failed = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Write,
            2 => Phase::Verify,
            3 => Phase::Good,
            4 => Phase::Failed,
            _ => Phase::Waiting,
        }
    }
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Write => "write",
            Phase::Verify => "verify",
            Phase::Good => "good",
            Phase::Failed => "FAILED",
        }
    }
}

/// What a stick's job shares with whoever shows progress and watches for stalls.
#[derive(Debug)]
pub struct StickState {
    phase: AtomicU8,
    done: AtomicU64,
    total: AtomicU64,
    written: AtomicU64,
    /// Milliseconds since `epoch` at the last progress.
    last_progress: AtomicU64,
    epoch: Instant,
    abort: AtomicBool,
    /// The stick's ends (backup GPT, then the first MiB) are being written: from here on it may
    /// hold a complete image.
    ends: AtomicBool,
}

impl Default for StickState {
    fn default() -> Self {
        StickState {
            phase: AtomicU8::new(0),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            written: AtomicU64::new(0),
            last_progress: AtomicU64::new(0),
            epoch: Instant::now(),
            abort: AtomicBool::new(false),
            ends: AtomicBool::new(false),
        }
    }
}

impl StickState {
    /// Current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }
    /// Set the phase and its total; progress starts at zero.
    pub fn set_phase(&self, p: Phase, total: u64) {
        self.done.store(0, Ordering::SeqCst);
        self.total.store(total, Ordering::SeqCst);
        self.phase.store(p as u8, Ordering::SeqCst);
        self.touch();
    }
    /// (done, total) of the current phase.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::SeqCst),
            self.total.load(Ordering::SeqCst),
        )
    }
    /// Bytes written to the stick so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_progress.store(ms, Ordering::SeqCst);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
        self.touch();
    }
    /// How long since the last progress.
    pub fn idle(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_progress.load(Ordering::SeqCst)))
    }
    /// Whether the stick may hold a complete image: its ends were being written (or it was
    /// read back). Before that it has neither of this image's GPTs.
    pub fn may_be_complete(&self) -> bool {
        self.ends.load(Ordering::SeqCst)
    }

    /// Ask the job to stop at its next step (it then wipes the stick's ends).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }
    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

impl Progress for StickState {
    fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::SeqCst);
    }
    fn advance(&self, n: u64) {
        StickState::advance(self, n);
    }
}

/// Why a stick failed.
#[derive(Debug, thiserror::Error)]
pub enum StickError {
    /// Writes failed after retries: the stick was pulled or is broken.
    #[error("removed or failed at byte {offset}: {source}")]
    Removed {
        /// Where.
        offset: u64,
        /// The last error.
        #[source]
        source: io::Error,
    },
    /// Another I/O error.
    #[error("{what} at byte {offset}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        offset: u64,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The read-back did not verify.
    #[error("read back from the stick: {0}")]
    Verify(String),
    /// Stopped from outside (Ctrl-C, or the stall watchdog).
    #[error("stopped before it was written and verified; its first and last MiB are wiped")]
    Aborted,
    /// It failed, and its ends could not be wiped either: it may still boot, and nobody knows
    /// what it holds.
    #[error("{0}; the stick could not be wiped: set it aside, its state is unknown")]
    NotWiped(Box<StickError>),
}

impl StickError {
    /// The stick may still hold a bootable image: it must be checked before it is used.
    pub fn state_unknown(&self) -> bool {
        matches!(self, StickError::NotWiped(_))
    }
}

/// Errors that mean the stick went away or broke. Besides EIO, ENODEV and ENXIO: ENOSPC, which
/// is what Linux answers once a pulled stick's size has dropped to 0 (its size was checked
/// before the first write, so it cannot mean "too small"), and ENOMEDIUM (a card taken out of a
/// reader).
fn removed_kind(e: &io::Error) -> bool {
    use nix::libc::{EIO, ENODEV, ENOMEDIUM, ENOSPC, ENXIO};
    matches!(
        e.raw_os_error(),
        Some(EIO | ENODEV | ENXIO | ENOSPC | ENOMEDIUM)
    )
}

/// Write all of `buf` at `offset`, continuing after short writes and retrying the errors of
/// [`removed_kind`] a bounded number of times.
fn write_fully(t: &dyn Target, buf: &[u8], offset: u64, st: &StickState) -> Result<(), StickError> {
    let (mut at, mut rest, mut retries) = (offset, buf, 0);
    while !rest.is_empty() {
        if st.aborted() {
            return Err(StickError::Aborted);
        }
        match t.write_at(rest, at) {
            Ok(0) => {
                return Err(StickError::Io {
                    what: "writing",
                    offset: at,
                    source: io::Error::new(io::ErrorKind::WriteZero, "the device took no bytes"),
                })
            }
            Ok(n) => {
                rest = &rest[n..];
                at += n as u64;
                retries = 0;
                st.written.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if removed_kind(&e) && retries < RETRIES => {
                retries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) if removed_kind(&e) => {
                return Err(StickError::Removed {
                    offset: at,
                    source: e,
                })
            }
            Err(e) => {
                return Err(StickError::Io {
                    what: "writing",
                    offset: at,
                    source: e,
                })
            }
        }
    }
    Ok(())
}

fn sync(t: &dyn Target, at: u64) -> Result<(), StickError> {
    t.sync().map_err(|e| {
        if removed_kind(&e) {
            StickError::Removed {
                offset: at,
                source: e,
            }
        } else {
            StickError::Io {
                what: "flushing",
                offset: at,
                source: e,
            }
        }
    })
}

/// Write `image` to `t` and verify it from the device. On any failure, an abort (Ctrl-C, the
/// stall watchdog) in the write or the read-back included, the stick's first and last MiB are
/// wiped; if even that fails, the error says the stick's state is unknown
/// ([`StickError::NotWiped`]): it may be complete and bootable.
pub fn flash(image: &Image, t: &dyn Target, st: &StickState) -> Result<(), StickError> {
    let r = write_image(image, t, st).and_then(|()| read_back(image, t, st));
    match r {
        Ok(()) => {
            st.set_phase(Phase::Good, 0);
            Ok(())
        }
        Err(e) => {
            st.set_phase(Phase::Failed, 0);
            match wipe_ends(t) {
                Err(_) if st.may_be_complete() => Err(StickError::NotWiped(Box::new(e))),
                _ => Err(e),
            }
        }
    }
}

fn write_image(image: &Image, t: &dyn Target, st: &StickState) -> Result<(), StickError> {
    let m = &image.manifest;
    let sectors = t.size() / SECTOR;
    let parts: Vec<_> = m.partitions.iter().map(|p| p.new_partition()).collect();
    let (head, tail) =
        gpt::disk_ends(sectors, m.disk.guid, &parts).map_err(|e| StickError::Io {
            what: "laying out the GPT",
            offset: 0,
            source: io::Error::other(e.to_string()),
        })?;
    let body = image.data_end - HEAD_BYTES as u64;
    st.set_phase(Phase::Write, body + (HEAD_BYTES + TAIL_BYTES) as u64);
    let mut buf = AlignedBuf::new(CHUNK);
    let mut at = HEAD_BYTES as u64;
    while at < image.data_end {
        let n = ((image.data_end - at) as usize).min(CHUNK);
        image
            .source
            .read_exact_at(&mut buf[..n], at)
            .map_err(|e| StickError::Io {
                what: "reading the image",
                offset: at,
                source: e,
            })?;
        write_fully(t, &buf[..n], at, st)?;
        st.advance(n as u64);
        at += n as u64;
    }
    let tail_at = sectors * SECTOR - TAIL_BYTES as u64;
    st.ends.store(true, Ordering::SeqCst);
    if tail_at > image.data_end {
        // Where the image's own backup GPT was: zeros, as in an image of the stick's size.
        buf[..TAIL_BYTES].fill(0);
        write_fully(t, &buf[..TAIL_BYTES], image.data_end, st)?;
    }
    buf[..TAIL_BYTES].copy_from_slice(&tail);
    write_fully(t, &buf[..TAIL_BYTES], tail_at, st)?;
    st.advance(TAIL_BYTES as u64);
    sync(t, tail_at)?;
    // The first MiB last, after everything it points to is on the stick.
    buf[..HEAD_BYTES].copy_from_slice(&head);
    write_fully(t, &buf[..HEAD_BYTES], 0, st)?;
    sync(t, 0)?;
    st.advance(HEAD_BYTES as u64);
    Ok(())
}

fn read_back(image: &Image, t: &dyn Target, st: &StickState) -> Result<(), StickError> {
    st.set_phase(Phase::Verify, 0);
    let disk = t.read_back().map_err(|e| StickError::Io {
        what: "reopening the stick to read it back",
        offset: 0,
        source: e,
    })?;
    if st.aborted() {
        return Err(StickError::Aborted);
    }
    // Every read of the verification asks first whether the job was stopped: a read-back that
    // stalls or is aborted ends as a failure (and the stick is wiped), never as a result.
    let disk = Abortable { disk, st };
    let verified = verify::verify_with(&disk, &image.keys, &image.expect, st);
    if st.aborted() {
        return Err(StickError::Aborted);
    }
    match verified {
        Ok(v) if v.manifest == image.manifest => Ok(()),
        Ok(v) => Err(StickError::Verify(format!(
            "the stick holds image {}, not {}",
            v.manifest.image_id, image.manifest.image_id
        ))),
        Err(VerifyError::Untrusted { failures, .. }) => {
            Err(StickError::Verify(verify::join(&failures)))
        }
        Err(e) => Err(StickError::Verify(e.to_string())),
    }
}

/// A read-back disk whose reads fail once the job is stopped.
struct Abortable<'a> {
    disk: Box<dyn Disk>,
    st: &'a StickState,
}

impl Disk for Abortable<'_> {
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.st.aborted() {
            // Not ErrorKind::Interrupted: readers retry that.
            return Err(io::Error::other("the read-back was stopped"));
        }
        self.disk.read_exact_at(buf, offset)
    }
    fn logical_block_size(&self) -> Option<u64> {
        self.disk.logical_block_size()
    }
}

/// Zero the first and last MiB and flush: the stick then neither boots nor looks like a
/// homestick (the primary GPT and the backup GPT are both gone). An error if any step failed.
fn wipe_ends(t: &dyn Target) -> io::Result<()> {
    let zeros = AlignedBuf::new(1 << 20);
    let size = t.size();
    let head = &zeros[..(size.min(1 << 20) as usize)];
    if t.write_at(head, 0)? != head.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write at 0"));
    }
    if size > 2 << 20 && t.write_at(&zeros, size - (1 << 20))? != zeros.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write at the end",
        ));
    }
    t.sync()
}
