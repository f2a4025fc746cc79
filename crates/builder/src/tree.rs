//! Reading a directory tree (a base's `esp/`) into files for a FAT volume: sorted, regular
//! files only, symlinks only if they stay inside the tree, hidden entries skipped, FAT-safe
//! names, bounded sizes.

use std::fs;
use std::path::Path;

use homestick_image::fat::{self, FatFile};
use homestick_image::files::read_bounded;

use crate::error::{input_file, read_err, BuildError};

/// Most files collected from a tree.
const MAX_TREE_FILES: usize = 1000;

fn tree_err(path: &Path, reason: impl Into<String>) -> BuildError {
    input_file(path, reason)
}

/// The metadata of a walked entry (through a symlink that stays inside `root`), or `None` for
/// a directory.
fn file_metadata(
    entry: &walkdir::DirEntry,
    root: &Path,
) -> Result<Option<fs::Metadata>, BuildError> {
    let path = entry.path();
    let is_link = entry.file_type().is_symlink();
    let meta = if is_link {
        let target =
            fs::canonicalize(path).map_err(|e| tree_err(path, format!("broken symlink: {e}")))?;
        if !target.starts_with(root) {
            return Err(tree_err(
                path,
                format!(
                    "symlink leaves the directory (points to {})",
                    target.display()
                ),
            ));
        }
        fs::metadata(&target).map_err(|e| tree_err(path, format!("cannot read: {e}")))?
    } else {
        entry
            .metadata()
            .map_err(|e| tree_err(path, format!("cannot read: {e}")))?
    };
    if meta.is_dir() {
        if is_link {
            return Err(tree_err(
                path,
                "symlinks to directories are not followed; copy the files",
            ));
        }
        return Ok(None);
    }
    Ok(Some(meta))
}

/// Read every file below `dir` for an image partition: sorted, regular files only, symlinks
/// only if they stay inside `dir`, hidden entries (`.name`) skipped, FAT-safe names, bounded
/// sizes. Used for a base's `esp/` tree.
pub fn collect_files(
    dir: &Path,
    max_file: u64,
    max_total: u64,
) -> Result<Vec<FatFile>, BuildError> {
    let root =
        fs::canonicalize(dir).map_err(|e| tree_err(dir, format!("cannot open directory: {e}")))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut lower_seen = std::collections::BTreeMap::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| {
            let p = e.path().unwrap_or(dir).to_path_buf();
            tree_err(&p, format!("cannot read: {e}"))
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let rel_str = rel
            .to_str()
            .ok_or_else(|| tree_err(path, "file name is not valid UTF-8"))?
            .to_string();
        let Some(meta) = file_metadata(&entry, &root)? else {
            continue;
        };
        if !meta.is_file() {
            return Err(tree_err(path, "not a regular file"));
        }
        if let Some(why) = fat::path_problem(&rel_str) {
            return Err(tree_err(path, why));
        }
        if let Some(other) = lower_seen.insert(rel_str.to_lowercase(), rel_str.clone()) {
            return Err(tree_err(
                path,
                format!("differs from {other:?} only in case; FAT cannot hold both"),
            ));
        }
        if meta.len() > max_file {
            return Err(tree_err(
                path,
                format!("{} bytes, over the limit of {max_file}", meta.len()),
            ));
        }
        total += meta.len();
        if total > max_total {
            return Err(tree_err(
                dir,
                format!("files total more than {max_total} bytes"),
            ));
        }
        if out.len() >= MAX_TREE_FILES {
            return Err(tree_err(dir, format!("more than {MAX_TREE_FILES} files")));
        }
        let data = read_bounded(path, max_file).map_err(read_err(path))?;
        out.push(FatFile {
            path: rel_str,
            data,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
