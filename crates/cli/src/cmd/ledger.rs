//! `homestick ledger`: list, show, export, and revoke a lost stick (the rows' output in
//! [`print`](super::ledger_print)).

use std::collections::BTreeSet;

use homestick_flash::report;
use homestick_ledger::{Attempt, Filter, Ledger};

use crate::output::stdout_failed;

use super::ledger_print::*;

use crate::cli::{LedgerArgs, LedgerCommand};
use crate::output::out;
use crate::{usage, Failure};

pub fn run(a: &LedgerArgs) -> Result<(), Failure> {
    let open = || {
        open_ledger(
            a.ledger.as_deref(),
            a.ledger_ca.as_deref(),
            a.ledger_insecure_plaintext,
        )
    };
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

/// Open the ledger at `at` (else the default location) as this station (host name and random
/// station id): a PostgreSQL ledger over TLS verified with `ca` (else the system's roots), or
/// in clear text where `insecure_plaintext` allows it.
pub(crate) fn open_ledger(
    at: Option<&str>,
    ca: Option<&std::path::Path>,
    insecure_plaintext: bool,
) -> Result<Ledger, Failure> {
    let at = at.map_or_else(homestick_ledger::default_location, String::from);
    let tls = homestick_ledger::Tls {
        ca: ca.map(std::path::Path::to_path_buf),
        insecure_plaintext,
    };
    let id = homestick_ledger::station_id().map_err(|e| {
        usage(format!(
            "this station's id (beside the default ledger): {e}"
        ))
    })?;
    Ledger::open(&at, &report::station_name(), &id, &tls).map_err(usage)
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
