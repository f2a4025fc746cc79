//! `homestick ledger`'s rows as a table, in detail, as JSON lines and as CSV.

use std::io::Write;

use homestick_image::fat::rfc3339;
use homestick_image::set::Credential;
use homestick_ledger::Attempt;
use serde_json::json;

use crate::output::out;
use crate::Failure;

pub(super) fn row_line(a: &Attempt) -> String {
    format!(
        "row {}: {} written {} at {} on {}",
        a.id,
        a.result,
        rfc3339(a.started),
        crate::terminal::text(&a.station),
        crate::terminal::text(&a.device)
    )
}

pub(super) fn time(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), rfc3339)
}

pub(super) fn print_table(rows: &[Attempt]) {
    out!(
        "{:>5}  {:20}  {:8}  {:20}  {:24}  {:10}  device",
        "id",
        "time",
        "result",
        "serial",
        "user",
        "station"
    );
    for a in rows {
        out!(
            "{:>5}  {:20}  {:8}  {:20}  {:24}  {:10}  {}",
            a.id,
            rfc3339(a.started),
            a.result,
            if a.serial.is_empty() { "-" } else { &a.serial },
            a.user_id.as_deref().unwrap_or("-"),
            a.station,
            a.device
        );
    }
    out!("{} attempt(s)", rows.len());
}

pub(super) fn credentials(a: &Attempt) -> Vec<Credential> {
    // The column is written by homestick from typed credentials; a row whose JSON does not parse
    // (edited by hand) lists none rather than failing the listing.
    a.credentials
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

pub(super) fn print_details(rows: &[Attempt]) {
    for a in rows {
        out!("attempt {}: {}", a.id, a.result);
        out!("  serial      {}", a.serial);
        if let Some(u) = &a.user_id {
            out!(
                "  user        {u} ({})",
                a.user_name.as_deref().unwrap_or("-")
            );
        }
        out!("  customer    {}", a.customer);
        if let Some(s) = &a.set_id {
            out!("  set         {s}");
        }
        out!("  image       {}", a.image_id);
        out!("  manifest    sha256 {}", a.manifest_sha256);
        let number = if a.device_number.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.device_number)
        };
        out!(
            "  station     {} (process {}), device {}{number}",
            a.station,
            a.pid,
            a.device
        );
        out!(
            "  started     {}, finished {}",
            rfc3339(a.started),
            time(a.finished)
        );
        if let Some(t) = a.revoked {
            out!("  revoked     {}", rfc3339(t));
        }
        if let Some(e) = &a.error {
            out!("  note        {e}");
        }
        for c in credentials(a) {
            out!("  credential  {} on {}: {}", c.kind, c.server, c.value);
        }
    }
}

pub(super) fn print_json(rows: &[Attempt]) -> Result<(), Failure> {
    for a in rows {
        // An Attempt is strings and numbers: serializing it cannot fail.
        let mut v = serde_json::to_value(a).unwrap_or_default();
        v["started"] = json!(rfc3339(a.started));
        v["finished"] = json!(a.finished.map(rfc3339));
        v["revoked"] = json!(a.revoked.map(rfc3339));
        v["credentials"] = json!(credentials(a));
        crate::output::json_line(&v)?;
    }
    Ok(())
}

pub(super) fn print_csv(rows: &[Attempt]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "id,started,finished,station,device,serial,customer,set_id,user_id,user_name,image_id,manifest_sha256,result,error,revoked,device_number")?;
    for a in rows {
        let f = [
            a.id.to_string(),
            rfc3339(a.started),
            // Absent values are empty cells: not finished, not of a set, no error, not revoked.
            a.finished.map(rfc3339).unwrap_or_default(),
            a.station.clone(),
            a.device.clone(),
            a.serial.clone(),
            a.customer.clone(),
            a.set_id.clone().unwrap_or_default(),
            a.user_id.clone().unwrap_or_default(),
            a.user_name.clone().unwrap_or_default(),
            a.image_id.clone(),
            a.manifest_sha256.clone(),
            a.result.clone(),
            a.error.clone().unwrap_or_default(),
            a.revoked.map(rfc3339).unwrap_or_default(),
            a.device_number.clone(),
        ];
        write!(out, "{}", homestick_image::csv::record(&f))?;
    }
    out.flush()
}

pub(super) fn print_revoked(a: &Attempt) {
    out!(
        "REVOKED: stick serial {} of {} ({}), image {}, written {} at {}",
        if a.serial.is_empty() {
            "-".to_string()
        } else {
            crate::terminal::text(&a.serial)
        },
        a.user_id.as_deref().unwrap_or("no user"),
        crate::terminal::text(a.user_name.as_deref().unwrap_or("-")),
        a.image_id,
        rfc3339(a.started),
        crate::terminal::text(&a.station)
    );
    let creds = credentials(a);
    if creds.is_empty() {
        out!("  no per-user credentials on it (a customer-wide image)");
        return;
    }
    out!("  drop on the servers now:");
    for c in creds {
        let what = match c.kind.as_str() {
            "wireguard-peer" => "WireGuard peer (public key)",
            "tunnel-address" => "WireGuard tunnel address",
            "sip-user" => "SIP user",
            "turn-user" => "TURN user",
            "sip-extension" => "SIP extension",
            "vpn-user" => "VPN user",
            "eap-identity" => "IPsec EAP identity",
            "certificate-serial" => "certificate serial",
            other => other,
        };
        out!("    {what:28} on {:10} {}", c.server, c.value);
    }
}
