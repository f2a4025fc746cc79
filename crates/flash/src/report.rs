//! The flash report: one record per stick, appended and flushed the moment it is known.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

/// One stick's line.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// RFC 3339 UTC.
    pub time: String,
    /// The station's host name.
    pub station: String,
    /// Device node.
    pub device: String,
    /// Its device number (`major:minor`): the device written and read back, whatever the
    /// node names later.
    pub device_number: String,
    /// USB port path.
    pub port: Option<String>,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Image id.
    pub image_id: String,
    /// Customer id.
    pub customer: String,
    /// Image version.
    pub version: String,
    /// SHA-256 of the signed manifest.json.
    pub manifest_sha256: String,
    /// `ok`, `failed`, or `unknown` (not verified and not wiped: set aside and checked).
    pub result: &'static str,
    /// Bytes written.
    pub bytes_written: u64,
    /// Seconds.
    pub seconds: f64,
    /// MB/s (10^6 bytes) while writing and verifying.
    pub mb_per_s: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// The user whose stick it is (a stick set's).
    pub user: Option<String>,
}

/// This machine's host name, for the report's `station` field.
pub fn station_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// JSON lines or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// CSV with a header line.
    Csv,
}

const FIELDS: [&str; 19] = [
    "time",
    "station",
    "device",
    "port",
    "vendor",
    "model",
    "serial",
    "size",
    "image_id",
    "customer",
    "version",
    "manifest_sha256",
    "result",
    "bytes_written",
    "seconds",
    "mb_per_s",
    "error",
    "user",
    "device_number",
];

/// An open report file.
#[derive(Debug)]
pub struct Report {
    file: File,
    format: Format,
}

impl Report {
    /// Open `path` for appending (created if missing; a CSV header if it is new). A symbolic
    /// link is refused, not followed: the station runs as root, and a link planted where the
    /// report goes would make it append to any file.
    pub fn open(path: &Path, format: Format) -> io::Result<Report> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        let mut r = Report { file, format };
        if format == Format::Csv && r.file.metadata()?.len() == 0 {
            writeln!(r.file, "{}", FIELDS.join(","))?;
        }
        Ok(r)
    }

    /// Append `rec` and flush it to the disk.
    pub fn append(&mut self, rec: &Record) -> io::Result<()> {
        let line = match self.format {
            Format::Json => serde_json::to_string(rec).map_err(io::Error::other)?,
            Format::Csv => {
                let v = serde_json::to_value(rec).map_err(io::Error::other)?;
                FIELDS
                    .iter()
                    .map(|f| match &v[*f] {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => homestick_image::csv::field(s),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            time: "2026-11-24T10:00:00Z".into(),
            station: "station-1".into(),
            device: "/dev/sdb".into(),
            device_number: "8:16".into(),
            port: Some("2-1.3".into()),
            vendor: "SanDisk".into(),
            model: "Ultra, \"fast\"".into(),
            serial: None,
            size: 16 << 30,
            image_id: "id".into(),
            customer: "stadt-a".into(),
            version: "1.0".into(),
            manifest_sha256: "ab".into(),
            result: "ok",
            bytes_written: 5,
            seconds: 1.5,
            mb_per_s: 3.0,
            error: None,
            user: None,
        }
    }

    #[test]
    fn json_lines_and_csv_with_one_header() {
        let t = tempfile::tempdir().unwrap();
        let j = t.path().join("r.jsonl");
        for _ in 0..2 {
            Report::open(&j, Format::Json)
                .unwrap()
                .append(&rec())
                .unwrap();
        }
        let text = std::fs::read_to_string(&j).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["serial"], serde_json::Value::Null);
        assert_eq!(v["port"], "2-1.3");
        let c = t.path().join("r.csv");
        for _ in 0..2 {
            Report::open(&c, Format::Csv)
                .unwrap()
                .append(&rec())
                .unwrap();
        }
        let text = std::fs::read_to_string(&c).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("time,station,device,port"));
        assert!(
            lines[1].contains(",\"Ultra, \"\"fast\"\"\","),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn report_csv_neutralises_formula_like_serials_from_a_device() {
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("r.csv");
        let mut r = rec();
        r.serial = Some("=HYPERLINK(\"http://evil\")".into());
        r.vendor = "+cmd".into();
        Report::open(&c, Format::Csv).unwrap().append(&r).unwrap();
        let text = std::fs::read_to_string(&c).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert!(line.contains(",'+cmd,"), "{line}");
        assert!(
            line.contains(",\"'=HYPERLINK(\"\"http://evil\"\")\","),
            "{line}"
        );
    }

    #[test]
    fn report_refuses_a_symlink_instead_of_following_it() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("shadow");
        std::fs::write(&target, "root:x:0:0\n").unwrap();
        let link = t.path().join("report.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Report::open(&link, Format::Csv).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ELOOP), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root:x:0:0\n");
    }
}
