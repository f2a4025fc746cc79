//! The dm-verity trees homestick builds, against veritysetup (cryptsetup-bin) as the oracle:
//! the same bytes as `veritysetup format` with the same salt and UUID, accepted by `veritysetup
//! verify`, rejected after one changed data byte; for one block, odd counts, and three levels.

use std::fs;

use homestick_image::hash::hex;
use homestick_image::verity::{self, Params};

use crate::common::*;

#[test]
fn trees_are_what_veritysetup_makes_and_checks() {
    let sizes: [u64; 6] = [1, 3, 128, 129, 1001, 16_385];
    table(
        &sizes,
        |n| format!("{n} data blocks ({} levels)", verity::levels(*n).len()),
        |&n| {
            let dir = tempfile::tempdir().unwrap();
            let (data_path, hash_path, reference) = (
                dir.path().join("data"),
                dir.path().join("hash"),
                dir.path().join("reference"),
            );
            let mut data = homestick_testkit::pseudo_random(n, (n * verity::BLOCK) as usize);
            let p = Params {
                data_blocks: n,
                salt: (0..32).map(|i| (i * 7 + n) as u8).collect(),
            };
            let uuid = *uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef).as_bytes();
            let t = verity::build(&data, 0, &p, uuid, 2, &|_| {}).unwrap();
            fs::write(&data_path, &data).unwrap();
            fs::write(&hash_path, &t.area).unwrap();
            let root = hex(&t.root);
            let d = data_path.display().to_string();
            let h = hash_path.display().to_string();
            let v = tool("veritysetup", &["verify", &d, &h, &root]);
            if v.code != 0 {
                return Err(format!("veritysetup verify: {}", v.all()));
            }
            let f = tool(
                "veritysetup",
                &[
                    "format",
                    &d,
                    reference.to_str().unwrap(),
                    "--salt",
                    &hex(&p.salt),
                    "--uuid",
                    "01234567-89ab-4def-8123-456789abcdef",
                ],
            );
            if !f.stdout.contains(&format!("Root hash:      \t{root}")) {
                return Err(format!("veritysetup format: {}", f.all()));
            }
            let want = fs::read(&reference).unwrap();
            if want != t.area || verity::hash_area_size(n) != want.len() as u64 {
                return Err(format!(
                    "hash area: {} bytes, veritysetup's {} bytes{}",
                    t.area.len(),
                    want.len(),
                    if want.len() == t.area.len() {
                        ", different"
                    } else {
                        ""
                    }
                ));
            }
            data[(n / 2 * verity::BLOCK + 11) as usize] ^= 0x20;
            fs::write(&data_path, &data).unwrap();
            let v = tool("veritysetup", &["verify", &d, &h, &root]);
            if v.code == 0 {
                return Err("veritysetup verify accepts a changed data byte".into());
            }
            Ok(())
        },
    );
}
