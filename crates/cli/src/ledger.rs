//! `homestick ledger`: list, show, export, and revoke a lost stick.

use std::collections::BTreeSet;
use std::io::Write;

use homestick_flash::report;
use homestick_image::fat::rfc3339;
use homestick_image::set::Credential;
use homestick_ledger::{Attempt, Filter, Ledger};
use serde_json::json;

use crate::output::stdout_failed;

use crate::cli::{LedgerArgs, LedgerCommand};
use crate::output::out;
use crate::{usage, Failure};

pub fn run(a: &LedgerArgs) -> Result<(), Failure> {
    let at = a
        .ledger
        .clone()
        .unwrap_or_else(homestick_ledger::default_location);
    let tls = homestick_ledger::Tls {
        ca: a.ledger_ca.clone(),
        insecure_plaintext: a.ledger_insecure_plaintext,
    };
    let open = || open_ledger(&at, &tls);
    match &a.command {
        LedgerCommand::List { set, json } => list(open()?, set.clone(), *json),
        LedgerCommand::Show { serial } => details(
            open()?,
            Filter {
                serial: Some(serial.clone()),
                ..Filter::default()
            },
            format!("no stick with serial {serial:?} in the ledger"),
        ),
        LedgerCommand::User { id } => details(
            open()?,
            Filter {
                user_id: Some(id.clone()),
                ..Filter::default()
            },
            format!("no stick of user {id:?} in the ledger"),
        ),
        LedgerCommand::Export { csv, .. } => export(open()?, *csv),
        LedgerCommand::Revoke {
            serial,
            id,
            all_sticks_of_image,
            user,
            reason,
            revocation_list,
            keyring,
        } => {
            // The list is read first: a list that cannot be used stops before the ledger
            // changes.
            let list = crate::list_to_extend(revocation_list, keyring.as_deref())?;
            let f = Filter {
                id: *id,
                serial: serial.clone(),
                user_id: user.clone(),
                ..Filter::default()
            };
            revoke(
                open()?,
                &f,
                *all_sticks_of_image,
                reason,
                revocation_list,
                list,
            )
        }
        LedgerCommand::Check {
            row,
            stick,
            keyring,
        } => check(open()?, *row, stick, keyring),
    }
}

/// `ledger list`: the sticks (of one set), as a table or JSON.
fn list(mut ledger: Ledger, set_id: Option<String>, json: bool) -> Result<(), Failure> {
    let rows = ledger
        .list(&Filter {
            set_id,
            ..Filter::default()
        })
        .map_err(usage)?;
    if json {
        print_json(&rows)?;
    } else {
        print_table(&rows);
    }
    Ok(())
}

/// `ledger export`: every row, as CSV or JSON.
fn export(mut ledger: Ledger, csv: bool) -> Result<(), Failure> {
    let rows = ledger.list(&Filter::default()).map_err(usage)?;
    if csv {
        print_csv(&rows).map_err(stdout_failed)
    } else {
        print_json(&rows)
    }
}

/// Open the ledger as this station (host name and random station id).
pub(crate) fn open_ledger(at: &str, tls: &homestick_ledger::Tls) -> Result<Ledger, Failure> {
    let id = homestick_ledger::station_id().map_err(|e| {
        usage(format!(
            "this station's id (beside the default ledger): {e}"
        ))
    })?;
    Ledger::open(at, &report::station_name(), &id, tls).map_err(usage)
}

/// `ledger revoke`: mark the rows `f` selects revoked, print what the servers must drop, and
/// add their image ids to `list` (written to `path`, its stale signature removed).
fn revoke(
    mut l: Ledger,
    f: &Filter,
    all_of_image: bool,
    reason: &str,
    path: &std::path::Path,
    mut list: homestick_image::revocation::RevocationList,
) -> Result<(), Failure> {
    let rows = revocable(&mut l, f, all_of_image)?;
    let done = l.revoke(&rows, reason).map_err(usage)?;
    for a in &done {
        list.image_ids.insert(a.image_id.clone());
        print_revoked(a);
    }
    list.version += 1;
    crate::write_list(path, &list)?;
    out!(
        "revocation list {}: version {}, {} image id(s); sign it (homestick revocations sign {} --key PROVIDER.key), then builds, verify and flash take it",
        path.display(),
        list.version,
        list.image_ids.len(),
        path.display()
    );
    Ok(())
}

/// The rows `f` selects that may be revoked. A serial that several rows share is refused (cheap
/// sticks share serials; loop devices have none): the row must be named. A stick of a
/// customer-wide image is refused unless `all_of_image`: its image id is every such stick's, so
/// revoking it revokes them all, and their credentials are shared.
fn revocable(l: &mut Ledger, f: &Filter, all_of_image: bool) -> Result<Vec<Attempt>, Failure> {
    let mut rows = l.revocable(f).map_err(usage)?;
    let what = match (&f.id, &f.serial, &f.user_id) {
        (Some(i), _, _) => format!("row {i}"),
        (_, Some(s), _) => format!("serial {s:?}"),
        (_, _, Some(u)) => format!("user {u:?}"),
        _ => String::new(),
    };
    if rows.is_empty() {
        return Err(usage(format!(
            "no good stick or stick to check with {what} in the ledger {} (already revoked? `homestick ledger list`)",
            l.location()
        )));
    }
    if f.id.is_none() && f.serial.is_some() && rows.len() > 1 {
        let list: Vec<String> = rows.iter().map(row_line).collect();
        return Err(usage(format!(
            "{what} matches {} sticks in the ledger (cheap sticks share serials): give --id with the row of the lost one:\n  {}",
            rows.len(),
            list.join("\n  ")
        )));
    }
    let wide: BTreeSet<String> = rows
        .iter()
        .filter(|a| a.user_id.is_none())
        .map(|a| a.image_id.clone())
        .collect();
    for image in wide {
        let all = l
            .revocable(&Filter {
                image_id: Some(image.clone()),
                ..Filter::default()
            })
            .map_err(usage)?;
        if !all_of_image {
            return Err(usage(format!(
                "{what} holds image {image}, written for the whole customer: revoking its image id revokes all {} stick(s) written with it, and every credential on them is shared by all: rotate them on the VPN server and the PBX. Give --all-sticks-of-image to revoke all {}",
                all.len(),
                all.len()
            )));
        }
        out!(
            "revoking image {image}: {} stick(s); every credential on them is shared: rotate them on the VPN server and the PBX",
            all.len()
        );
        for a in all {
            if !rows.iter().any(|r| r.id == a.id) {
                rows.push(a);
            }
        }
    }
    Ok(rows)
}

fn row_line(a: &Attempt) -> String {
    format!(
        "row {}: {} written {} at {} on {}",
        a.id,
        a.result,
        rfc3339(a.started),
        crate::terminal::text(&a.station),
        crate::terminal::text(&a.device)
    )
}

/// `ledger check`: verify the stick of a row that needs a check and record what it holds.
fn check(
    mut l: Ledger,
    row: i64,
    stick: &std::path::Path,
    keyring: &std::path::Path,
) -> Result<(), Failure> {
    let a = l
        .list(&Filter {
            id: Some(row),
            ..Filter::default()
        })
        .map_err(usage)?
        .pop()
        .ok_or_else(|| usage(format!("no row {row} in the ledger {}", l.location())))?;
    if a.result != "needs-check" {
        return Err(usage(format!(
            "row {row} is {}, not a stick to check",
            a.result
        )));
    }
    let keys = homestick_image::keys::load_keyring(keyring).map_err(usage)?;
    let disk = homestick_image::disk::FileDisk::open(stick)
        .map_err(|e| usage(format!("{}: {e}", stick.display())))?;
    let verdict =
        homestick_image::verify::verify(&disk, &keys, &homestick_image::verify::NoProgress);
    let failed = match verdict {
        Ok(v) if v.manifest.image_id.to_string() == a.image_id => None,
        Ok(v) => Some(format!(
            "checked: the stick holds image {}, not {}",
            v.manifest.image_id, a.image_id
        )),
        Err(e) => Some(format!(
            "checked: {}",
            crate::terminal::text(&e.to_string())
        )),
    };
    let r = l.check(row, failed.as_deref()).map_err(usage)?;
    match failed {
        None => out!(
            "row {row}: good: {} holds the verified image {} of {}",
            stick.display(),
            r.image_id,
            r.user_id.as_deref().unwrap_or("the customer")
        ),
        Some(e) => out!(
            "row {row}: failed ({e}); {} is free for another stick",
            r.user_id.as_deref().unwrap_or("the image")
        ),
    }
    Ok(())
}

/// Every attempt `f` selects, in detail; `none` (exit 2) if there is none.
fn details(mut l: Ledger, f: Filter, none: String) -> Result<(), Failure> {
    let rows = l.list(&f).map_err(usage)?;
    if rows.is_empty() {
        return Err(usage(none));
    }
    print_details(&rows);
    Ok(())
}

fn time(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), rfc3339)
}

fn print_table(rows: &[Attempt]) {
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

fn credentials(a: &Attempt) -> Vec<Credential> {
    // The column is written by homestick from typed credentials; a row whose JSON does not parse
    // (edited by hand) lists none rather than failing the listing.
    a.credentials
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

fn print_details(rows: &[Attempt]) {
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

fn print_json(rows: &[Attempt]) -> Result<(), Failure> {
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

fn print_csv(rows: &[Attempt]) -> std::io::Result<()> {
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

fn print_revoked(a: &Attempt) {
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
