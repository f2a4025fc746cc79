//! Customer profiles: `customer.toml` plus the files beside it, checked and normalized.
//!
//! A profile directory becomes the profile partition: its files as they are, plus
//! `profile.json`, the normalized form of customer.toml (stable key order). Errors name the
//! file, the field (TOML path) and the reason.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use homestick_image::fat::path_problem;
use serde::{Deserialize, Serialize};

/// Largest single file in a profile.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Largest profile in total.
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// Most files in a profile.
const MAX_FILES: usize = 1000;
/// Name of the generated normalized file.
pub const PROFILE_JSON: &str = "profile.json";

/// A problem with a profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A field or file is wrong.
    #[error("{}: {field}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// TOML path of the field, or `-` for the file as a whole.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(file: &Path, field: &str, reason: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        file: file.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// The `[customer]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Slug: lowercase letters, digits and `-`, 2..=63 characters.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Support hotline (phone number as people dial it).
    #[serde(default)]
    pub hotline: Option<String>,
    /// Support e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Support hours, free text.
    #[serde(default)]
    pub hours: Option<String>,
    /// Languages for messages, e.g. `["de", "en"]`.
    #[serde(default)]
    pub languages: Option<Vec<String>>,
}

/// A file of the profile partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFile {
    /// `/`-separated path relative to the profile directory.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// A loaded, checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The customer.
    pub customer: Customer,
    /// Every file of the profile partition, sorted by path, `profile.json` included.
    pub files: Vec<ProfileFile>,
}

#[derive(Debug, Deserialize)]
struct TopLevel {
    customer: Customer,
}

fn check_customer(file: &Path, c: &Customer) -> Result<(), ProfileError> {
    let slug_ok = (2..=63).contains(&c.id.len())
        && c.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !c.id.starts_with('-')
        && !c.id.ends_with('-');
    if !slug_ok {
        return Err(invalid(
            file,
            "customer.id",
            format!(
                "{:?} is not a slug (2-63 of a-z, 0-9 and '-', not starting or ending with '-')",
                c.id
            ),
        ));
    }
    if c.name.trim().is_empty()
        || c.name.chars().count() > 100
        || c.name.chars().any(char::is_control)
    {
        return Err(invalid(
            file,
            "customer.name",
            "must be 1 to 100 printable characters",
        ));
    }
    for (field, v) in [
        ("customer.hotline", &c.hotline),
        ("customer.email", &c.email),
        ("customer.hours", &c.hours),
    ] {
        if let Some(v) = v {
            if v.trim().is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                return Err(invalid(
                    file,
                    field,
                    "must be 1 to 200 printable characters",
                ));
            }
        }
    }
    if let Some(langs) = &c.languages {
        for (i, l) in langs.iter().enumerate() {
            if l != "de" && l != "en" {
                return Err(invalid(
                    file,
                    &format!("customer.languages[{i}]"),
                    format!("{l:?} is not supported (de, en)"),
                ));
            }
        }
    }
    Ok(())
}

/// Convert TOML to JSON; serde_json's map keeps keys sorted, which is the normal form.
fn to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Read every file below `dir` for an image partition: sorted, regular files only, symlinks
/// only if they stay inside `dir`, hidden entries (`.name`) skipped, FAT-safe names, bounded
/// sizes. Shared by profiles and the base's `esp/` tree.
pub fn collect_files(
    dir: &Path,
    max_file: u64,
    max_total: u64,
) -> Result<Vec<ProfileFile>, ProfileError> {
    let root = fs::canonicalize(dir)
        .map_err(|e| invalid(dir, "-", format!("cannot open directory: {e}")))?;
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
            invalid(&p, "-", format!("cannot read: {e}"))
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let rel_str = rel
            .to_str()
            .ok_or_else(|| invalid(path, "-", "file name is not valid UTF-8"))?
            .to_string();
        let ft = entry.file_type();
        let meta = if ft.is_symlink() {
            let target = fs::canonicalize(path)
                .map_err(|e| invalid(path, "-", format!("broken symlink: {e}")))?;
            if !target.starts_with(&root) {
                return Err(invalid(
                    path,
                    "-",
                    format!(
                        "symlink leaves the directory (points to {})",
                        target.display()
                    ),
                ));
            }
            fs::metadata(&target).map_err(|e| invalid(path, "-", format!("cannot read: {e}")))?
        } else {
            entry
                .metadata()
                .map_err(|e| invalid(path, "-", format!("cannot read: {e}")))?
        };
        if meta.is_dir() {
            if ft.is_symlink() {
                return Err(invalid(
                    path,
                    "-",
                    "symlinks to directories are not followed; copy the files",
                ));
            }
            continue;
        }
        if !meta.is_file() {
            return Err(invalid(path, "-", "not a regular file"));
        }
        if let Some(why) = path_problem(&rel_str) {
            return Err(invalid(path, "-", why));
        }
        if let Some(other) = lower_seen.insert(rel_str.to_lowercase(), rel_str.clone()) {
            return Err(invalid(
                path,
                "-",
                format!("differs from {other:?} only in case; FAT cannot hold both"),
            ));
        }
        if meta.len() > max_file {
            return Err(invalid(
                path,
                "-",
                format!("{} bytes, over the limit of {max_file}", meta.len()),
            ));
        }
        total += meta.len();
        if total > max_total {
            return Err(invalid(
                dir,
                "-",
                format!("files total more than {max_total} bytes"),
            ));
        }
        if out.len() >= MAX_FILES {
            return Err(invalid(dir, "-", format!("more than {MAX_FILES} files")));
        }
        let data = fs::read(path).map_err(|e| invalid(path, "-", format!("cannot read: {e}")))?;
        out.push(ProfileFile {
            path: rel_str,
            data,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

impl Profile {
    /// Load and check the profile in `dir`.
    pub fn load(dir: &Path) -> Result<Profile, ProfileError> {
        let meta =
            fs::metadata(dir).map_err(|e| invalid(dir, "-", format!("profile directory: {e}")))?;
        if !meta.is_dir() {
            return Err(invalid(
                dir,
                "-",
                "not a directory (give the profile directory)",
            ));
        }
        let toml_path = dir.join("customer.toml");
        let text = match fs::read(&toml_path) {
            Ok(b) => {
                String::from_utf8(b).map_err(|_| invalid(&toml_path, "-", "not UTF-8 text"))?
            }
            Err(e) => return Err(invalid(&toml_path, "-", format!("cannot read: {e}"))),
        };
        let value: toml::Value =
            toml::from_str(&text).map_err(|e| invalid(&toml_path, "-", toml_message(&e)))?;
        let top: TopLevel = toml::from_str(&text).map_err(|e| {
            let msg = toml_message(&e);
            let field = if msg.contains("missing field `customer`") {
                "customer".to_string()
            } else {
                field_of(&msg)
            };
            invalid(&toml_path, &field, msg)
        })?;
        check_customer(&toml_path, &top.customer)?;
        let mut files = collect_files(dir, MAX_FILE_BYTES, MAX_TOTAL_BYTES)?;
        if files.iter().any(|f| f.path == PROFILE_JSON) {
            return Err(invalid(
                &dir.join(PROFILE_JSON),
                "-",
                "is generated by homestick; remove it from the profile",
            ));
        }
        let mut json = serde_json::to_vec_pretty(&to_json(&value)).unwrap_or_default();
        json.push(b'\n');
        files.push(ProfileFile {
            path: PROFILE_JSON.into(),
            data: json,
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Profile {
            dir: dir.to_path_buf(),
            customer: top.customer,
            files,
        })
    }
}

/// toml's messages span lines with a source excerpt; keep the first line and the reason.
fn toml_message(e: &toml::de::Error) -> String {
    let span = e
        .span()
        .map(|s| format!(" (at byte {})", s.start))
        .unwrap_or_default();
    format!("{}{span}", e.message().trim())
}

/// Best-effort field name from a serde message such as "unknown field `x`".
fn field_of(msg: &str) -> String {
    let mut parts = msg.split('`');
    match (parts.next(), parts.next()) {
        (Some(before), Some(name)) if before.contains("unknown field") => {
            format!("customer.{name}")
        }
        _ => "customer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, data: &str) {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    const GOOD: &str = "[customer]\nid = \"stadt-a\"\nname = \"Stadt A\"\nhotline = \"+49 30 1234\"\n\n[extra]\nz = 1\na = [1, 2]\n";

    #[test]
    fn loads_and_normalizes() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "customer.toml", GOOD);
        write(d.path(), "certs/ca.pem", "CA");
        write(d.path(), ".hidden", "x");
        let p = Profile::load(d.path()).unwrap();
        let paths: Vec<_> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["certs/ca.pem", "customer.toml", "profile.json"]);
        let json = String::from_utf8(p.files[2].data.clone()).unwrap();
        assert!(json.find("\"customer\"").unwrap() < json.find("\"extra\"").unwrap());
        assert!(json.find("\"a\"").unwrap() < json.find("\"z\"").unwrap());
    }

    #[test]
    fn bad_profiles_name_file_and_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[customer]\nid = \"Stadt A\"\nname = \"x\"\n",
                "customer.id",
                "not a slug",
            ),
            (
                "[customer]\nid = \"stadt-a\"\nname = \"\"\n",
                "customer.name",
                "printable",
            ),
            (
                "[customer]\nid = \"stadt-a\"\nname = \"x\"\ncolour = 1\n",
                "customer.colour",
                "unknown field",
            ),
            (
                "[customer]\nid = \"stadt-a\"\n",
                "customer",
                "missing field `name`",
            ),
            ("[other]\n", "customer", "missing field `customer`"),
            ("[customer\n", "-", "invalid table header"),
            (
                "[customer]\nid = \"stadt-a\"\nname = \"x\"\nlanguages = [\"fr\"]\n",
                "customer.languages[0]",
                "not supported",
            ),
        ];
        for (toml, field, msg) in cases {
            let d = tempfile::tempdir().unwrap();
            write(d.path(), "customer.toml", toml);
            let ProfileError::Invalid {
                file,
                field: f,
                reason,
            } = Profile::load(d.path()).unwrap_err();
            assert!(file.ends_with("customer.toml"), "{toml}: {file:?}");
            assert_eq!(&f, field, "{toml}: {reason}");
            assert!(reason.contains(msg), "{toml}: {reason}");
        }
    }

    #[test]
    fn symlink_out_of_the_profile_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "customer.toml", GOOD);
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("leak")).unwrap();
        let e = Profile::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("symlink leaves the directory"), "{e}");
    }

    #[test]
    fn generated_name_and_case_clash_are_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "customer.toml", GOOD);
        write(d.path(), "profile.json", "{}");
        assert!(Profile::load(d.path())
            .unwrap_err()
            .to_string()
            .contains("generated"));
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "customer.toml", GOOD);
        write(d.path(), "a.txt", "1");
        write(d.path(), "A.TXT", "2");
        assert!(Profile::load(d.path())
            .unwrap_err()
            .to_string()
            .contains("only in case"));
    }
}
