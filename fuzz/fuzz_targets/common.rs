//! Shared by the whole-disk targets: a real signed image built once (fixture base, demo profile,
//! test key), and structure-aware edits of it. Each input is a list of (offset, byte) edits to
//! the image's metadata: MBR and primary GPT, and the start of the ESP (boot sector, FSInfo,
//! FATs, root directory, the manifest's clusters).
#![allow(dead_code)]

use std::sync::{Mutex, OnceLock};

use homestick_image::keys::TrustedKey;

pub struct World {
    pub image: Mutex<Vec<u8>>,
    pub keys: Vec<TrustedKey>,
}

pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = homestick_testkit::build_fixture_image(dir.path(), 1).expect("fuzz image");
        World {
            image: Mutex::new(std::fs::read(out).expect("read")),
            keys: homestick_testkit::test_keyring().expect("key"),
        }
    })
}

/// Regions worth mutating in a disk image: MBR + primary GPT, and the start of the ESP.
pub const DISK_REGIONS: [(usize, usize); 2] = [(0, 34 * 512), (1 << 20, (1 << 20) + (3 << 20))];

/// Apply the (offset, byte) edits `data` describes to `img` within `regions`, run `f` on the
/// result, and undo the edits.
pub fn with_edits<R>(
    img: &mut [u8],
    regions: &[(usize, usize)],
    data: &[u8],
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let mut undo = Vec::new();
    for chunk in data.chunks_exact(5).take(64) {
        let raw = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        let (lo, hi) = regions[raw % regions.len()];
        let at = lo + (raw / regions.len()) % (hi - lo);
        undo.push((at, img[at]));
        img[at] = chunk[4];
    }
    let r = f(img);
    for (at, v) in undo.into_iter().rev() {
        img[at] = v;
    }
    r
}
