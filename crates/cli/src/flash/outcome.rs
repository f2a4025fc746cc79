//! A stick's end in a run: the outcome told on the screen, recorded in the ledger and in the
//! report.

use super::run::identity;
use super::*;

impl Run {
    pub(crate) fn finished(&mut self, o: &Outcome) {
        let d = &o.device;
        self.settled.insert(identity(d));
        let user = o.image.manifest.user.clone();
        let who = format!(
            "{} (serial {}{}{})",
            d.path.display(),
            crate::terminal::text(d.serial.as_deref().unwrap_or("none")),
            // Not on USB (allowed with --allow-non-removable): no port.
            d.port
                .as_ref()
                .map(|p| format!(", USB {}", crate::terminal::text(p)))
                .unwrap_or_default(),
            // A customer-wide image has no user.
            user.as_ref()
                .map(|u| format!(", user {} ({})", u.id, u.name))
                .unwrap_or_default()
        );
        let (error, unknown) = self.record(o, &who);
        if error.is_none() {
            self.written.insert(identity(d));
            self.labels.push((
                user.as_ref().map_or_else(
                    || o.image.manifest.customer.name.clone(),
                    |u| format!("{} ({})", u.name, u.id),
                ),
                d.serial.clone().unwrap_or_else(|| "-".into()),
            ));
        }
        match &error {
            None => {
                self.good += 1;
                self.ui
                    .line(&format!("homestick: {who}: verified, may be unplugged"));
            }
            Some(e) if unknown => {
                self.failed += 1;
                self.ui.line(&format!(
                    "homestick: {who}: UNKNOWN, set it aside and check it (homestick ledger check): {e}"
                ));
            }
            Some(e) => {
                self.failed += 1;
                self.ui.line(&format!("homestick: {who}: FAILED: {e}"));
            }
        }
        self.append_report(o, error, unknown);
    }

    /// Record `o` in the ledger; the stick's result as it stands then: a verified stick whose
    /// row is no longer this station's (changed by another station or by hand) is not handed
    /// out as good: its state is unknown.
    pub(crate) fn record(&mut self, o: &Outcome, who: &str) -> (Option<String>, bool) {
        let Some(id) = self.attempts.remove(&o.device.name) else {
            return (o.error.clone(), o.unknown);
        };
        let how = match (&o.error, o.unknown) {
            (None, _) => Finish::Good,
            (Some(e), false) => Finish::Failed(e),
            (Some(e), true) => Finish::NeedsCheck(e),
        };
        match self.ledger.finish(id, how) {
            Ok(()) => (o.error.clone(), o.unknown),
            Err(e) if o.good() => (
                Some(format!(
                    "verified, but the ledger does not hold it as this station's any more ({e})"
                )),
                true,
            ),
            Err(e) => {
                self.ui.line(&format!(
                    "homestick: warning: {who}: not recorded in the ledger: {e}"
                ));
                (o.error.clone(), o.unknown)
            }
        }
    }

    /// The report's line for `o`, with its result as recorded.
    pub(crate) fn append_report(&mut self, o: &Outcome, error: Option<String>, unknown: bool) {
        let Some(report) = self.report.as_mut() else {
            return;
        };
        let (d, m) = (&o.device, &o.image.manifest);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs() as i64);
        let rec = Record {
            time: homestick_image::fat::rfc3339(now),
            station: report::station_name(),
            device: d.path.display().to_string(),
            device_number: format!("{}:{}", d.dev.0, d.dev.1),
            port: d.port.clone(),
            vendor: d.vendor.clone(),
            model: d.model.clone(),
            serial: d.serial.clone(),
            size: d.size,
            image_id: m.image_id.to_string(),
            customer: m.customer.id.clone(),
            version: m.version.clone(),
            manifest_sha256: hex(&o.image.manifest_sha256),
            result: match (error.is_none(), unknown) {
                (true, _) => "ok",
                (false, true) => "unknown",
                (false, false) => "failed",
            },
            bytes_written: o.bytes_written,
            seconds: (o.seconds * 1000.0).round() / 1000.0,
            mb_per_s: if o.seconds > 0.0 {
                ((o.bytes_written as f64 / o.seconds / 1e6) * 10.0).round() / 10.0
            } else {
                0.0
            },
            error,
            user: m.user.as_ref().map(|u| u.id.clone()),
        };
        if let Err(e) = report.append(&rec) {
            self.ui
                .line(&format!("homestick: warning: cannot write the report: {e}"));
        }
    }
}
