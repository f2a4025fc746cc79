//! A customer's roster: one row per employee with a value for each of the profile's per-user
//! slots, or `generate` for what homestick makes itself.
//!
//! Format: CSV, UTF-8, a header line `user_id,display_name,<slot>,…` naming every slot the
//! profile declares (in any order) and nothing else. `user_id`: 1 to 64 of `a-z 0-9 . _ -`;
//! `display_name`: 1 to 100 characters without control characters. Each slot's value is checked
//! by its kind (a WireGuard key is base64 of 32 bytes, a tunnel address a host in the VPN's
//! `address_pool` with a /32, a SIP extension digits, …); user ids, tunnel addresses, SIP users
//! and extensions are unique. Every error names the line and the column, never the value: the
//! values are secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use base64::Engine;

use homestick_formats::slot::{SipField, SlotKind as Kind, SlotName, VpnField};

use crate::check;
use crate::{Profile, VpnKind};

pub use homestick_formats::slot::OnLoss;

mod problems;
pub use problems::{FileError, GenerateError, ValueError};

/// The value that asks homestick to make one.
pub const GENERATE: &str = "generate";

/// One problem, at a line (1 = the header) and a column; the value itself is never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterError {
    /// Line in the file (1 is the header); 0 for the file as a whole.
    pub line: usize,
    /// Column name, or "-" for the file or a whole row.
    pub column: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for RosterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}", self.reason),
            l => write!(f, "line {l}, column {}: {}", self.column, self.reason),
        }
    }
}

fn err(line: usize, column: impl fmt::Display, reason: impl Into<String>) -> RosterError {
    RosterError {
        line,
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// One employee.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Line in the file.
    pub line: usize,
    /// `user_id`.
    pub id: String,
    /// `display_name`.
    pub name: String,
    /// Slot → value (`generate` until filled).
    pub values: BTreeMap<SlotName, String>,
}

impl fmt::Debug for User {
    // Values are secrets: never in a debug print either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("line", &self.line)
            .field("id", &self.id)
            .field("slots", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A parsed roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The slot columns, in the file's order.
    pub slots: Vec<SlotName>,
    /// The users, in the file's order.
    pub users: Vec<User>,
}

/// What a server knows a lost stick's credential by: the WireGuard public key of a private
/// key, a certificate's serial, else the value itself.
pub fn credential_value(slot: &SlotName, v: &str) -> Option<String> {
    match (slot.on_loss(), parse_value(slot, v).ok()?) {
        (OnLoss::Drop("wireguard-peer"), Value::Key(_)) => wireguard_public_key(v),
        (OnLoss::Drop(_), Value::Certificate(c)) => Some(c.serial.clone()),
        (OnLoss::Drop(_), _) => Some(v.to_string()),
        (OnLoss::SecretOnly, _) => None,
    }
}

/// A slot's value, parsed: what the renderer writes with each format's writer.
#[derive(Clone)]
pub enum Value {
    /// A WireGuard private or preshared key.
    Key([u8; 32]),
    /// A tunnel address (/32).
    Address(Ipv4Addr),
    /// A word from an allow-list: extension (digits), user name, identity, password.
    Word(zeroize::Zeroizing<String>),
    /// A client certificate.
    Certificate(Box<check::CertInfo>),
    /// A client private key.
    PrivateKey(check::ClientKey),
}

impl Value {
    /// The value as its formats write it: base64, `a.b.c.d/32`, the word, or PEM written anew
    /// from DER (with its final newline).
    pub fn text(&self) -> zeroize::Zeroizing<String> {
        use zeroize::Zeroizing;
        match self {
            Value::Key(k) => Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(k)),
            Value::Address(a) => Zeroizing::new(format!("{a}/32")),
            Value::Word(w) => w.clone(),
            Value::Certificate(c) => Zeroizing::new(crate::write::pem("CERTIFICATE", &c.der)),
            Value::PrivateKey(k) => Zeroizing::new(crate::write::pem(k.label, &k.der)),
        }
    }
}

impl fmt::Debug for Value {
    // Values are secrets: never in a debug print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Value(..)")
    }
}

/// Characters a password may hold besides ASCII letters and digits: none of them ends or
/// escapes a value in a rendered file (baresip's `;auth_pass=`, strongSwan's quoted secrets,
/// OpenVPN's inline blocks, CSV).
pub(crate) const PASSWORD_SPECIALS: &str = "-_.~+/!%*@:?^()[]&|";

/// Whether `v` is 1..=`max` of ASCII letters, digits and `extra`, beginning with a letter or a
/// digit (never with what a spreadsheet takes for a formula).
fn word(v: &str, max: usize, extra: &str) -> bool {
    (1..=max).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// Parse `v` as the value of `slot`: the allow-list of its kind, or the PEM it must be.
pub fn parse_value(slot: &SlotName, v: &str) -> Result<Value, ValueError> {
    use zeroize::Zeroizing;
    if v.is_empty() {
        return Err(ValueError::Empty);
    }
    let pem = matches!(slot.kind(), Kind::Certificate | Kind::PrivateKey);
    if pem && !v.contains("-----BEGIN ") {
        return Err(ValueError::NotPem);
    }
    match slot.kind() {
        Kind::WireGuardKey => base64::engine::general_purpose::STANDARD
            .decode(v)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .filter(|k| base64::engine::general_purpose::STANDARD.encode(k) == v)
            .map(Value::Key)
            .ok_or(ValueError::WireGuardKey),
        Kind::Address => v
            .strip_suffix("/32")
            .and_then(|a| a.parse().ok())
            .filter(|a: &Ipv4Addr| format!("{a}/32") == v)
            .map(Value::Address)
            .ok_or(ValueError::Address),
        Kind::Extension => {
            if v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValueError::Extension);
            }
            Ok(Value::Word(Zeroizing::new(v.to_string())))
        }
        Kind::SipUser => {
            if !word(v, 64, "._-+") {
                return Err(ValueError::SipUser);
            }
            Ok(Value::Word(Zeroizing::new(v.to_string())))
        }
        Kind::Identity => {
            if !word(v, 128, "._-+@") {
                return Err(ValueError::Identity);
            }
            Ok(Value::Word(Zeroizing::new(v.to_string())))
        }
        Kind::Password => {
            if v.chars().count() < 12 {
                return Err(ValueError::ShortPassword);
            }
            if !word(v, 128, PASSWORD_SPECIALS) {
                return Err(ValueError::PasswordCharacters);
            }
            Ok(Value::Word(Zeroizing::new(v.to_string())))
        }
        Kind::Certificate => check::client_certificate(v)
            .map(|c| Value::Certificate(Box::new(c)))
            .map_err(|e| ValueError::Pem(e.0)),
        Kind::PrivateKey => check::client_key(v)
            .map(Value::PrivateKey)
            .map_err(|e| ValueError::Pem(e.0)),
    }
}

fn id_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The header names `user_id`, `display_name` and every slot of the profile, each once, and
/// nothing else.
fn check_header(cols: &[String], profile: &Profile) -> Result<(), Vec<RosterError>> {
    let want: BTreeSet<&SlotName> = profile.slots().iter().map(|s| &s.name).collect();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for c in cols {
        let slot = c.parse::<SlotName>().ok().filter(|s| want.contains(s));
        if !seen.insert(c.as_str()) {
            errors.push(err(1, c, "named twice"));
        } else if c != "user_id" && c != "display_name" && slot.is_none() {
            errors.push(err(1, c, "not a slot of this profile"));
        }
    }
    let want_names = want.iter().map(|s| s.to_string());
    for c in ["user_id".to_string(), "display_name".to_string()]
        .into_iter()
        .chain(want_names)
    {
        if !seen.contains(c.as_str()) {
            errors.push(err(1, &c, "missing column"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// One record as a user; `None` for an empty line.
fn row(
    rec: Result<csv::StringRecord, csv::Error>,
    cols: &[String],
) -> Result<Option<User>, RosterError> {
    let rec = rec.map_err(|e| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        // csv's message could quote a value: say only where.
        err(line, "-", "not CSV (a quote left open?)")
    })?;
    let line = rec.position().map_or(0, |p| p.line() as usize);
    if rec.iter().all(|f| f.trim().is_empty()) {
        return Ok(None);
    }
    if rec.iter().any(|f| f.contains(['\n', '\r'])) {
        return Err(err(
            line,
            "-",
            "not CSV: a quote is left open (a value spans lines)",
        ));
    }
    if rec.len() != cols.len() {
        return Err(err(
            line,
            "-",
            format!("{} fields, the header has {}", rec.len(), cols.len()),
        ));
    }
    let mut u = User {
        line,
        id: String::new(),
        name: String::new(),
        values: BTreeMap::new(),
    };
    for (c, v) in cols.iter().zip(rec.iter()) {
        let v = v.trim().to_string();
        match (c.as_str(), c.parse::<SlotName>()) {
            ("user_id", _) => u.id = v,
            ("display_name", _) => u.name = v,
            (_, Ok(slot)) => {
                u.values.insert(slot, v);
            }
            // Refused with the header.
            (_, Err(_)) => {}
        }
    }
    Ok(Some(u))
}

impl Roster {
    /// Parse `bytes` against the profile's slots. All problems, each on its own.
    pub fn parse(bytes: &[u8], profile: &Profile) -> Result<Roster, Vec<RosterError>> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            vec![err(line, "-", "not UTF-8")]
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Quotes come in pairs ("" inside a quoted value too): an odd count leaves one open,
        // which a CSV reader would take as one value running to the end of the file.
        if text.matches('"').count() % 2 == 1 {
            let at = text.rfind('"').unwrap_or(0);
            let line = text[..at].matches('\n').count() + 1;
            return Err(vec![err(line, "-", "not CSV: a quote is left open")]);
        }
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut records = r.records();
        let header = match records.next() {
            Some(Ok(h)) => h,
            Some(Err(e)) => return Err(vec![err(1, "-", format!("not CSV: {e}"))]),
            None => return Err(vec![err(0, "-", "empty: no header line")]),
        };
        let cols: Vec<String> = header.iter().map(|c| c.trim().to_string()).collect();
        check_header(&cols, profile)?;
        let mut users = Vec::new();
        let mut errors = Vec::new();
        for rec in records {
            match row(rec, &cols) {
                Ok(Some(u)) => users.push(u),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if users.is_empty() && errors.is_empty() {
            errors.push(err(0, "-", "no users"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let slots = cols.iter().filter_map(|c| c.parse().ok()).collect();
        Ok(Roster { slots, users })
    }

    /// Every problem: ids and names, each value by its kind, uniqueness, and (unless
    /// `allow_generate`) every `generate` still to be filled.
    pub fn check(&self, profile: &Profile, allow_generate: bool) -> Vec<RosterError> {
        let pools = pools(profile);
        let mut errors = Vec::new();
        let mut unique: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for u in &self.users {
            if !id_ok(&u.id) {
                errors.push(err(u.line, "user_id", "must be 1 to 64 of a-z 0-9 . _ -"));
            }
            if !display_name_ok(&u.name) {
                errors.push(err(
                    u.line,
                    "display_name",
                    "must be 1 to 100 characters without control characters or line separators, not beginning with = + - @",
                ));
            }
            once(
                &mut unique,
                &mut errors,
                u.line,
                "user id",
                u.id.clone(),
                "user_id",
            );
            for (slot, v) in &u.values {
                if v == GENERATE {
                    if !allow_generate {
                        errors.push(err(
                            u.line,
                            slot,
                            "not filled yet (run `homestick roster fill`)",
                        ));
                    }
                    continue;
                }
                match check_value(slot, v, &pools) {
                    Err(reason) => errors.push(err(u.line, slot, reason.to_string())),
                    Ok(Some(key)) => once(
                        &mut unique,
                        &mut errors,
                        u.line,
                        unique_name(slot),
                        key,
                        &slot.to_string(),
                    ),
                    Ok(None) => {}
                }
            }
            errors.extend(check_key_pairs(u));
        }
        errors.sort_by_key(|e| e.line);
        errors
    }

    /// Replace every `generate` with a new value: WireGuard keys, passwords (SIP, TURN, OpenVPN, EAP: 144 random
    /// bits), tunnel addresses (the next free host of the VPN's pool, after the server's).
    /// Fails, changing nothing, where a value cannot be made (no pool, pool exhausted, a slot
    /// homestick cannot generate).
    pub fn fill(&mut self, profile: &Profile) -> Result<(), Vec<RosterError>> {
        let pools = pools(profile);
        let mut taken: BTreeSet<Ipv4Addr> = self
            .users
            .iter()
            .flat_map(|u| u.values.iter())
            .filter(|(s, _)| s.kind() == Kind::Address)
            .filter_map(|(_, v)| v.strip_suffix("/32")?.parse().ok())
            .collect();
        let mut out = self.users.clone();
        let mut errors = Vec::new();
        for u in &mut out {
            for (slot, v) in u.values.iter_mut() {
                if v != GENERATE {
                    continue;
                }
                match generate(slot, &pools, &mut taken) {
                    Ok(new) => *v = new,
                    Err(reason) => errors.push(err(u.line, slot, reason.to_string())),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.users = out;
        Ok(())
    }

    /// Read the PEM files that certificate and key slots name (paths relative to `dir`, the
    /// roster's directory) into their values; at most 64 KiB each. A file is opened strictly
    /// beneath `dir`: an absolute path, `..`, or a symbolic link on the way is refused (a
    /// roster must not copy a file of the signing machine, such as its signing key, onto a
    /// stick). Run before [`Roster::check`] and [`personalize`]; [`Roster::to_csv`] of the
    /// result would hold the files' contents, so a filled roster is written from the roster
    /// before this.
    pub fn read_files(&mut self, dir: &std::path::Path) -> Vec<RosterError> {
        // `roster.csv`'s parent is the empty path: the current directory.
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        let mut errors = Vec::new();
        for u in &mut self.users {
            for (slot, v) in u.values.iter_mut() {
                if !matches!(slot.kind(), Kind::Certificate | Kind::PrivateKey)
                    || v == GENERATE
                    || v.is_empty()
                {
                    continue;
                }
                match read_beneath(dir, v) {
                    Ok(text) => *v = text,
                    Err(reason) => errors.push(err(
                        u.line,
                        slot,
                        format!("cannot read the file it names ({v}): {reason}"),
                    )),
                }
            }
        }
        errors
    }

    /// The roster as CSV (the same columns, generated values filled in).
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        let names: Vec<String> = self.slots.iter().map(ToString::to_string).collect();
        let mut header = vec!["user_id", "display_name"];
        header.extend(names.iter().map(String::as_str));
        w.write_record(&header)?;
        for u in &self.users {
            let mut row = vec![u.id.as_str(), u.name.as_str()];
            row.extend(
                self.slots
                    .iter()
                    .map(|s| u.values.get(s).map_or("", String::as_str)),
            );
            w.write_record(&row)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        String::from_utf8(bytes)
            .map_err(|e| csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

/// The text of the file `rel` beneath `dir` (see [`Roster::read_files`]).
fn read_beneath(dir: &std::path::Path, rel: &str) -> Result<String, FileError> {
    use std::io::Read;
    use std::path::{Component, Path};
    const MAX: u64 = 64 << 10;
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(FileError::Absolute);
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(FileError::ParentDir);
    }
    let f = homestick_sys::open_beneath(dir, p).map_err(|e| {
        // Linux's ELOOP, EXDEV and ENOENT, as openat2 reports them.
        match e.raw_os_error() {
            Some(40) => FileError::Symlink,
            Some(18) => FileError::Leaves,
            Some(2) => FileError::NotFound,
            _ => FileError::Io(e),
        }
    })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > MAX {
        return Err(FileError::TooLarge(meta.len(), MAX));
    }
    let mut b = Vec::new();
    f.take(MAX + 1).read_to_end(&mut b)?;
    String::from_utf8(b).map_err(|_| FileError::NotText)
}

/// Record `key` as taken by `line` in column `col`, or an error if an earlier line took it
/// there (`what` names it in the message).
fn once(
    unique: &mut BTreeMap<String, BTreeMap<String, usize>>,
    errors: &mut Vec<RosterError>,
    line: usize,
    what: &str,
    key: String,
    col: &str,
) {
    let m = unique.entry(col.to_string()).or_default();
    match m.get(&key) {
        Some(l) => errors.push(err(line, col, format!("the same {what} as line {l}"))),
        None => {
            m.insert(key, line);
        }
    }
}

fn unique_name(slot: &SlotName) -> &'static str {
    match slot.kind() {
        Kind::Address => "tunnel address",
        Kind::Extension => "SIP extension",
        Kind::SipUser => "SIP user",
        Kind::Identity => "VPN user name",
        Kind::WireGuardKey => "WireGuard key",
        Kind::Certificate => "certificate serial",
        _ => "value",
    }
}

/// Each WireGuard VPN's address pool, by VPN name.
fn pools(profile: &Profile) -> BTreeMap<String, (Ipv4Addr, u8)> {
    profile
        .vpn
        .iter()
        .filter_map(|v| match &v.kind {
            VpnKind::WireGuard(w) => {
                let pool = check::address_pool(w.address_pool.as_deref()?).ok()?;
                Some((v.toml.name.clone(), pool))
            }
            _ => None,
        })
        .collect()
}

/// Check `v` for `slot`; `Some(key)` for values that must be unique.
fn check_value(
    slot: &SlotName,
    v: &str,
    pools: &BTreeMap<String, (Ipv4Addr, u8)>,
) -> Result<Option<String>, ValueError> {
    let value = parse_value(slot, v)?;
    match (slot.kind(), &value) {
        (Kind::Address, Value::Address(a)) => {
            if let Some(&(net, prefix)) = slot.vpn_name().and_then(|n| pools.get(n)) {
                let mask = u32::MAX << (32 - prefix);
                let (n, x) = (u32::from(net), u32::from(*a));
                if x & mask != n {
                    return Err(ValueError::OutsidePool(net, prefix));
                }
                if x == n || x == n | !mask || x == n + 1 {
                    return Err(ValueError::Reserved(net, prefix));
                }
            }
            Ok(Some(a.to_string()))
        }
        (Kind::Extension | Kind::SipUser | Kind::Identity, Value::Word(w)) => {
            Ok(Some(w.to_string()))
        }
        (Kind::WireGuardKey, Value::Key(k)) if is_private_key(slot) => {
            Ok(Some(base64::engine::general_purpose::STANDARD.encode(k)))
        }
        (Kind::Certificate, Value::Certificate(c)) => Ok(Some(c.serial.clone())),
        _ => Ok(None),
    }
}

/// A WireGuard private key (not a preshared key).
fn is_private_key(slot: &SlotName) -> bool {
    matches!(
        slot,
        SlotName::Vpn {
            field: VpnField::PrivateKey,
            ..
        }
    )
}

/// Each VPN's client key must belong to the user's client certificate of that VPN.
fn check_key_pairs(u: &User) -> Vec<RosterError> {
    let mut errors = Vec::new();
    for (slot, v) in &u.values {
        let SlotName::Vpn {
            vpn: n,
            field: VpnField::ClientKey,
        } = slot
        else {
            continue;
        };
        let cert_slot = SlotName::vpn(n, VpnField::ClientCertificate);
        let (Ok(Value::PrivateKey(k)), Some(Ok(Value::Certificate(c)))) = (
            parse_value(slot, v),
            u.values.get(&cert_slot).map(|c| parse_value(&cert_slot, c)),
        ) else {
            continue;
        };
        if !check::key_matches(&c, &k) {
            errors.push(err(
                u.line,
                slot,
                format!("the private key does not belong to the certificate in {cert_slot}"),
            ));
        }
    }
    errors
}

/// Whether a display name can be shown and listed: 1 to 100 characters, none that breaks a
/// line, not beginning like a spreadsheet formula.
fn display_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 100
        && !name.chars().any(crate::write::breaks_line)
        && !homestick_image::csv::formula_like(name)
}

/// The profile's files for `user`: the profile rendered again with every slot written from the
/// user's parsed value by the writer of the format it stands in (never pasted into the
/// template), and the user (id and display name) in profile.json. The roster must have passed
/// [`Roster::check`] without `generate`; a slot without a value is an error.
pub fn personalize(profile: &Profile, user: &User) -> Result<Vec<crate::ProfileFile>, RosterError> {
    let mut values = BTreeMap::new();
    for slot in profile.slots() {
        let v = user
            .values
            .get(&slot.name)
            .filter(|v| *v != GENERATE)
            .ok_or_else(|| {
                err(
                    user.line,
                    &slot.name,
                    format!("no value for {} in {}", slot.name, slot.files.join(", ")),
                )
            })?;
        let value =
            parse_value(&slot.name, v).map_err(|r| err(user.line, &slot.name, r.to_string()))?;
        values.insert(slot.name.clone(), value);
    }
    let who = homestick_formats::profile::User {
        id: user.id.clone(),
        name: user.name.clone(),
    };
    crate::render::render_for(profile, &values, who).map_err(|e| match e {
        crate::render::RenderError::Unwritable { field, source } => {
            err(user.line, &field, source.to_string())
        }
        other => err(user.line, "-", other.to_string()),
    })
}

/// The WireGuard public key (base64) of a private key (base64 of 32 bytes), as `wg pubkey`
/// prints it; `None` if it is not one.
pub fn wireguard_public_key(private_b64: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let k: [u8; 32] = b64.decode(private_b64.trim()).ok()?.try_into().ok()?;
    let p = curve25519_dalek::MontgomeryPoint::mul_base_clamped(k);
    Some(b64.encode(p.to_bytes()))
}

/// A file for a server, made from a filled roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// File name.
    pub name: String,
    /// Contents.
    pub data: String,
    /// Holds shared secrets (preshared keys, passwords): to be written with mode 0600.
    pub secret: bool,
}

/// The host part of a SIP URI (`sip:host:port;params` → `host`).
fn sip_host(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    let rest = rest.split(';').next().unwrap_or(rest);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => rest.split(':').next().unwrap_or(rest),
    }
}

/// SIP digest HA1: MD5 of `user:realm:password` (RFC 2617), lowercase hex.
pub fn sip_ha1(user: &str, realm: &str, password: &str) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(format!("{user}:{realm}:{password}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn csv_line(fields: &[&str]) -> String {
    homestick_image::csv::record(fields)
}

/// What the servers need from a filled, checked roster, and no private key of a user:
/// per WireGuard VPN the server's `[Peer]` sections (public key, preshared key, allowed IP, a
/// comment naming the user); per IPsec VPN with EAP the swanctl `secrets` a server takes; per
/// OpenVPN VPN with passwords the user names and passwords for its authentication back end;
/// for the PBX a CSV of extension, SIP user, display name and password, or with `ha1_realm`
/// the SIP digest HA1 instead of the password.
pub fn exports(
    profile: &Profile,
    roster: &Roster,
    ha1_realm: Option<&str>,
) -> Result<Vec<Export>, RosterError> {
    let mut out = Vec::new();
    for v in &profile.vpn {
        let n = &v.toml.name;
        out.extend(match &v.kind {
            VpnKind::WireGuard(_) => Some(wireguard_peers(profile, roster, n)),
            VpnKind::Ipsec(_) => ipsec_secrets(profile, roster, n)?,
            VpnKind::OpenVpn(_) => openvpn_users(roster, n),
        });
    }
    if let Some(sp) = &profile.softphone {
        out.push(pbx_users(roster, &sp.registrar, ha1_realm));
    }
    Ok(out)
}

/// A user's value of connection `n`'s `field`.
fn vpn_value(u: &User, n: &str, field: VpnField) -> Option<String> {
    u.values.get(&SlotName::vpn(n, field)).cloned()
}

/// The server's `[Peer]` sections of WireGuard connection `n`.
fn wireguard_peers(profile: &Profile, roster: &Roster, n: &str) -> Export {
    let mut s = format!(
        "# WireGuard peers of {} ({}), VPN {n}: add to the server's configuration.\n\
         # Made by homestick roster export; one [Peer] per user.\n",
        profile.customer.name, profile.customer.id
    );
    let mut secret = false;
    for u in &roster.users {
        let Some(public) = vpn_value(u, n, VpnField::PrivateKey)
            .as_deref()
            .and_then(wireguard_public_key)
        else {
            continue;
        };
        // Writing to a String cannot fail.
        homestick_formats::push!(
            s,
            "\n[Peer]\n# {}\nPublicKey = {public}\n",
            crate::write::comment(&format!("{} ({})", u.id, u.name))
        );
        if let Some(psk) = vpn_value(u, n, VpnField::PresharedKey) {
            secret = true;
            homestick_formats::pushln!(s, "PresharedKey = {psk}");
        }
        if let Some(a) = vpn_value(u, n, VpnField::Address) {
            homestick_formats::pushln!(s, "AllowedIPs = {a}");
        }
    }
    Export {
        name: format!("wireguard-{n}-peers.conf"),
        data: s,
        secret,
    }
}

/// swanctl `secrets` for the EAP users of IPsec connection `n` (none without EAP).
fn ipsec_secrets(
    profile: &Profile,
    roster: &Roster,
    n: &str,
) -> Result<Option<Export>, RosterError> {
    let mut s = format!(
        "# EAP secrets of {} ({}), VPN {n}, for the server's swanctl.conf.\n\
         # Made by homestick roster export.\nsecrets {{\n",
        profile.customer.name, profile.customer.id
    );
    let mut any = false;
    for u in &roster.users {
        let (id_slot, pw_slot) = (VpnField::EapIdentity, VpnField::EapPassword);
        let (Some(id), Some(pw)) = (vpn_value(u, n, id_slot), vpn_value(u, n, pw_slot)) else {
            continue;
        };
        let quoted = |field, v: &str| {
            crate::write::swanctl_quoted(v)
                .map_err(|e| err(u.line, SlotName::vpn(n, field), e.to_string()))
        };
        let (id, pw) = (quoted(id_slot, &id)?, quoted(pw_slot, &pw)?);
        any = true;
        // Writing to a String cannot fail.
        homestick_formats::push!(
            s,
            "  # {}\n  eap-{} {{\n    id = {id}\n    secret = {pw}\n  }}\n",
            crate::write::comment(&format!("{} ({})", u.id, u.name)),
            u.id.replace('.', "_")
        );
    }
    s.push_str("}\n");
    Ok(any.then(|| Export {
        name: format!("ipsec-{n}-secrets.conf"),
        data: s,
        secret: true,
    }))
}

/// User names and passwords of OpenVPN connection `n` (none without passwords).
fn openvpn_users(roster: &Roster, n: &str) -> Option<Export> {
    let mut s = csv_line(&["user_id", "display_name", "username", "password"]);
    let mut any = false;
    for u in &roster.users {
        let user = vpn_value(u, n, VpnField::Username);
        if let (Some(name), Some(pw)) = (user, vpn_value(u, n, VpnField::Password)) {
            any = true;
            s.push_str(&csv_line(&[&u.id, &u.name, &name, &pw]));
        }
    }
    any.then(|| Export {
        name: format!("openvpn-{n}-users.csv"),
        data: s,
        secret: true,
    })
}

/// The PBX's users: extension, SIP user, display name, and the password or (with a realm)
/// the HA1; an empty realm is the registrar's host.
fn pbx_users(roster: &Roster, registrar: &str, ha1_realm: Option<&str>) -> Export {
    let realm = ha1_realm.map(|r| if r.is_empty() { sip_host(registrar) } else { r });
    let last = if realm.is_some() { "ha1" } else { "password" };
    let mut s = csv_line(&["extension", "user", "display_name", last]);
    for u in &roster.users {
        let get = |f| u.values.get(&SlotName::Sip(f)).map_or("", String::as_str);
        let pw = get(SipField::Password);
        let cred = match realm {
            Some(r) => sip_ha1(get(SipField::User), r, pw),
            None => pw.to_string(),
        };
        s.push_str(&csv_line(&[
            get(SipField::Extension),
            get(SipField::User),
            &u.name,
            &cred,
        ]));
    }
    Export {
        name: "pbx-users.csv".into(),
        data: s,
        secret: true,
    }
}

fn random<const N: usize>() -> Result<[u8; N], GenerateError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(GenerateError::NoRandom)?;
    Ok(b)
}

fn generate(
    slot: &SlotName,
    pools: &BTreeMap<String, (Ipv4Addr, u8)>,
    taken: &mut BTreeSet<Ipv4Addr>,
) -> Result<String, GenerateError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match slot.kind() {
        Kind::WireGuardKey => {
            let mut k = random::<32>()?;
            if is_private_key(slot) {
                // An X25519 private key as WireGuard makes one (`wg genkey`): clamped.
                k[0] &= 248;
                k[31] = (k[31] & 127) | 64;
            }
            Ok(b64.encode(k))
        }
        Kind::Password => loop {
            // base64url may begin with '-' or '_': a password begins with a letter or digit
            // (a spreadsheet would take a leading '-' for a formula).
            let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<18>()?);
            if p.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                return Ok(p);
            }
        },
        Kind::Address => {
            // Only a connection's slot holds an address.
            let vpn = slot.vpn_name().ok_or(GenerateError::NotConnection)?;
            let &(net, prefix) = pools
                .get(vpn)
                .ok_or_else(|| GenerateError::NoPool(vpn.to_string()))?;
            let n = u32::from(net);
            let last = n | (u32::MAX >> prefix);
            // The network address and the first host (the server) are not handed out.
            let free = (n + 2..last)
                .map(Ipv4Addr::from)
                .find(|a| !taken.contains(a))
                .ok_or(GenerateError::Exhausted(net, prefix))?;
            taken.insert(free);
            Ok(format!("{free}/32"))
        }
        Kind::Extension | Kind::SipUser | Kind::Identity | Kind::Certificate | Kind::PrivateKey => {
            Err(GenerateError::Cannot(slot.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sl(name: &str) -> SlotName {
        name.parse().expect("a slot name")
    }

    fn profile(pool: &str) -> Profile {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../profiles/stadt-musterhausen");
        let mut p = Profile::load(&dir, 1_796_000_000).unwrap();
        for v in &mut p.vpn {
            if let VpnKind::WireGuard(w) = &mut v.kind {
                w.address_pool = Some(pool.into());
            }
        }
        p
    }

    const HEADER: &str =
        "user_id,display_name,sip.extension,sip.password,sip.user,vpn.buero.address,vpn.buero.private_key";
    const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const KEY2: &str = "sB9C4Bm1Zl7PFzQl0mTfRFIhI1bHQZ4Y3pGVi4qj6W0=";

    fn roster(rows: &[&str]) -> String {
        std::iter::once(HEADER)
            .chain(rows.iter().copied())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn public_keys_are_x25519_of_the_private_key() {
        // RFC 7748, section 6.1: Alice's key pair.
        let hexd = |h: &str| -> Vec<u8> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let private = b64.encode(hexd(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let public = b64.encode(hexd(
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        ));
        assert_eq!(wireguard_public_key(&private), Some(public));
        assert_eq!(wireguard_public_key("not base64"), None);
        // RFC 2617's example: HA1 of Mufasa:testrealm@host.com:Circle Of Life.
        assert_eq!(
            sip_ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn personalized_files_and_exports_hold_what_they_should_and_no_private_key() {
        let p = profile("10.99.0.0/22");
        let text = roster(&[
            "anna.schmidt,Anna Schmidt,201,generate,anna,generate,generate",
            "ben.meier,Ben Meier,202,generate,ben,generate,generate",
        ]);
        let mut r = Roster::parse(text.as_bytes(), &p).unwrap();
        r.fill(&p).unwrap();
        for u in &r.users {
            let files = personalize(&p, u).unwrap();
            let all: String = files
                .iter()
                .map(|f| String::from_utf8_lossy(&f.data).to_string())
                .collect();
            assert!(!all.contains("{{"), "no placeholder left");
            assert!(all.contains(&u.values[&sl("vpn.buero.private_key")]));
            assert!(all.contains(&u.values[&sl("sip.password")]));
        }
        let ex = exports(&p, &r, None).unwrap();
        let names: Vec<&str> = ex.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["wireguard-buero-peers.conf", "pbx-users.csv"]);
        for u in &r.users {
            let k = &u.values[&sl("vpn.buero.private_key")];
            assert!(ex.iter().all(|e| !e.data.contains(k.as_str())));
            let public = wireguard_public_key(k).unwrap();
            assert!(ex[0].data.contains(&format!(
                "# {} ({})\nPublicKey = {public}\nAllowedIPs = {}\n",
                u.id,
                u.name,
                u.values[&sl("vpn.buero.address")]
            )));
        }
        assert!(ex[1].secret, "the PBX file has passwords");
        let ha1 = exports(&p, &r, Some("")).unwrap();
        assert!(ha1[1].data.starts_with("extension,user,display_name,ha1\n"));
        assert!(ha1[1].data.contains(&sip_ha1(
            "anna",
            "sip.musterhausen.example",
            &r.users[0].values[&sl("sip.password")]
        )));
        // A user without a value for a slot: named by line and slot.
        let mut u = r.users[0].clone();
        u.values.remove(&sl("sip.user"));
        let e = personalize(&p, &u).unwrap_err();
        assert_eq!((e.line, e.column.as_str()), (2, "sip.user"));
    }

    #[test]
    fn every_slot_is_a_credential_to_drop_or_a_secret_only_each_case() {
        // Every slot both example profiles and a TURN softphone declare, walked.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let mut slots: Vec<SlotName> = Vec::new();
        for id in ["stadt-musterhausen", "gemeinde-waldbach"] {
            let p = Profile::load(&root.join(id), 1_796_000_000).unwrap();
            slots.extend(p.slots().iter().map(|s| s.name.clone()));
        }
        slots.extend([sl("sip.turn_username"), sl("sip.turn_password")]);
        let want = [
            ("sip.extension", OnLoss::Drop("sip-extension")),
            ("sip.password", OnLoss::SecretOnly),
            ("sip.user", OnLoss::Drop("sip-user")),
            ("sip.turn_username", OnLoss::Drop("turn-user")),
            ("sip.turn_password", OnLoss::SecretOnly),
            ("vpn.buero.address", OnLoss::Drop("tunnel-address")),
            ("vpn.buero.private_key", OnLoss::Drop("wireguard-peer")),
            (
                "vpn.rathaus.client_certificate",
                OnLoss::Drop("certificate-serial"),
            ),
            ("vpn.rathaus.client_key", OnLoss::SecretOnly),
            ("vpn.rathaus.username", OnLoss::Drop("vpn-user")),
            ("vpn.rathaus.password", OnLoss::SecretOnly),
            ("vpn.ikev2.eap_identity", OnLoss::Drop("eap-identity")),
            ("vpn.ikev2.eap_password", OnLoss::SecretOnly),
        ];
        for slot in &slots {
            let got = slot.on_loss();
            println!("case {slot}: {got:?} on {}", slot.server());
            let expected = want.iter().find(|w| sl(w.0) == *slot).map(|w| w.1);
            assert_eq!(Some(got), expected, "{slot}: not in the table");
        }
        assert_eq!(sl("sip.turn_username").server(), "turn");
        assert_eq!(sl("vpn.ikev2.eap_identity").server(), "ikev2");
    }

    #[test]
    fn every_password_slot_can_be_generated() {
        for slot in [
            "sip.password",
            "sip.turn_password",
            "vpn.rathaus.password",
            "vpn.ikev2.eap_password",
        ] {
            assert_eq!(sl(slot).kind(), Kind::Password, "{slot}");
            let p = generate(&sl(slot), &BTreeMap::new(), &mut BTreeSet::new()).unwrap();
            assert_eq!(p.len(), 24, "{slot}: {p}");
        }
        for slot in [
            "vpn.ikev2.eap_identity",
            "vpn.rathaus.username",
            "vpn.rathaus.client_key",
        ] {
            assert!(
                generate(&sl(slot), &BTreeMap::new(), &mut BTreeSet::new()).is_err(),
                "{slot}"
            );
        }
    }

    #[test]
    fn generate_fills_every_slot_and_the_result_checks() {
        let p = profile("10.99.0.0/22");
        let text = roster(&[
            "anna.schmidt,Anna Schmidt,201,generate,anna,generate,generate",
            "ben.meier,Ben Meier,202,generate,ben,10.99.0.2/32,generate",
            "cem.yilmaz,Cem Yılmaz,203,generate,cem,generate,generate",
        ]);
        let mut r = Roster::parse(text.as_bytes(), &p).unwrap();
        assert_eq!(r.check(&p, true), []);
        assert_eq!(
            r.check(&p, false).len(),
            8,
            "every generate is reported unfilled"
        );
        r.fill(&p).unwrap();
        assert_eq!(r.check(&p, false), [], "filled roster checks");
        let addr = |i: usize| r.users[i].values[&sl("vpn.buero.address")].clone();
        // Ben's own address is kept; the others take the next free ones after the server's.
        assert_eq!(
            [addr(0), addr(1), addr(2)],
            ["10.99.0.3/32", "10.99.0.2/32", "10.99.0.4/32"]
        );
        let keys: BTreeSet<&String> = r
            .users
            .iter()
            .map(|u| &u.values[&sl("vpn.buero.private_key")])
            .collect();
        assert_eq!(keys.len(), 3);
        for u in &r.users {
            let k = base64::engine::general_purpose::STANDARD
                .decode(&u.values[&sl("vpn.buero.private_key")])
                .unwrap();
            assert_eq!(
                (k.len(), k[0] & 7, k[31] & 0xc0),
                (32, 0, 0x40),
                "clamped X25519 key"
            );
            assert!(u.values[&sl("sip.password")].len() >= 24);
        }
        // Written out and read back: the same roster.
        let again = Roster::parse(r.to_csv().unwrap().as_bytes(), &p).unwrap();
        assert_eq!(again.users, r.users);
        assert!(!format!("{:?}", r.users[0]).contains(&r.users[0].values[&sl("sip.password")]));
    }

    #[test]
    fn each_bad_roster_is_named_by_line_and_column_without_its_value() {
        let p = profile("10.99.0.0/22");
        let good = "anna,Anna,201,SECRET-password-1,anna,10.99.0.10/32,".to_string() + KEY;
        let row = |f: &dyn Fn(&mut Vec<String>)| {
            let mut v: Vec<String> = good.split(',').map(str::to_string).collect();
            f(&mut v);
            v.join(",")
        };
        let second = "ben,Ben,202,SECRET-password-2,ben,10.99.0.11/32,".to_string() + KEY2;
        struct Case {
            name: &'static str,
            text: Vec<u8>,
            line: usize,
            column: &'static str,
            want: &'static str,
        }
        let case = |name, text: String, line, column, want| Case {
            name,
            text: text.into_bytes(),
            line,
            column,
            want,
        };
        let with = |rows: &[String]| roster(&rows.iter().map(String::as_str).collect::<Vec<_>>());
        let mut latin1 = with(std::slice::from_ref(&good)).into_bytes();
        latin1.extend_from_slice(b"\nc\xe9m,C\xe9m,203,SECRET-password-3,cem,10.99.0.12/32,");
        latin1.extend_from_slice(KEY.as_bytes());
        let cases = vec![
            case(
                "duplicate user",
                with(&[
                    good.clone(),
                    row(&|v| v[2] = "209".into())
                        .replace("10.99.0.10", "10.99.0.19")
                        .replace(KEY, KEY2)
                        .replace(
                            "anna,Anna,209,SECRET-password-1,anna",
                            "anna,Anna2,209,SECRET-password-1,anna2",
                        ),
                ]),
                3,
                "user_id",
                "the same user id as line 2",
            ),
            case(
                "address outside the pool",
                with(&[row(&|v| v[5] = "10.98.0.1/32".into())]),
                2,
                "vpn.buero.address",
                "outside the address pool 10.99.0.0/22",
            ),
            case(
                "address taken twice",
                with(&[good.clone(), second.replace("10.99.0.11", "10.99.0.10")]),
                3,
                "vpn.buero.address",
                "the same tunnel address as line 2",
            ),
            case(
                "address without /32",
                with(&[row(&|v| v[5] = "10.99.0.10".into())]),
                2,
                "vpn.buero.address",
                "with /32",
            ),
            case(
                "the server's address",
                with(&[row(&|v| v[5] = "10.99.0.1/32".into())]),
                2,
                "vpn.buero.address",
                "server address",
            ),
            case(
                "the network address",
                with(&[row(&|v| v[5] = "10.99.0.0/32".into())]),
                2,
                "vpn.buero.address",
                "network",
            ),
            case(
                "malformed key",
                with(&[row(&|v| v[6] = "SECRETnotakey".into())]),
                2,
                "vpn.buero.private_key",
                "not a WireGuard key",
            ),
            case(
                "key of 31 bytes",
                with(&[row(&|v| {
                    v[6] = "SECRETAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()
                })]),
                2,
                "vpn.buero.private_key",
                "base64 of 32 bytes",
            ),
            case(
                "missing column",
                HEADER.replace(",sip.user", "") + "\n" + &good,
                1,
                "sip.user",
                "missing column",
            ),
            case(
                "unknown slot",
                HEADER.to_string() + ",vpn.other.address\n" + &good + ",x",
                1,
                "vpn.other.address",
                "not a slot of this profile",
            ),
            case(
                "column twice",
                HEADER.to_string() + ",sip.user\n" + &good + ",x",
                1,
                "sip.user",
                "named twice",
            ),
            case(
                "empty value",
                with(&[row(&|v| v[4] = String::new())]),
                2,
                "sip.user",
                "empty",
            ),
            case(
                "wrong encoding",
                String::from_utf8_lossy(&latin1).into_owned(),
                0,
                "",
                "",
            ),
            case(
                "too few fields",
                with(&[good.clone(), "ben,Ben,202".into()]),
                3,
                "-",
                "3 fields, the header has 7",
            ),
            case(
                "user id with capitals",
                with(&[row(&|v| v[0] = "Anna".into())]),
                2,
                "user_id",
                "a-z 0-9",
            ),
            case(
                "empty display name",
                with(&[row(&|v| v[1] = String::new())]),
                2,
                "display_name",
                "1 to 100 characters",
            ),
            case(
                "extension with letters",
                with(&[row(&|v| v[2] = "2x1".into())]),
                2,
                "sip.extension",
                "digits",
            ),
            case(
                "extension twice",
                with(&[good.clone(), second.replace(",202,", ",201,")]),
                3,
                "sip.extension",
                "the same SIP extension as line 2",
            ),
            case(
                "SIP user twice",
                with(&[good.clone(), second.replace(",ben,10", ",anna,10")]),
                3,
                "sip.user",
                "the same SIP user as line 2",
            ),
            case(
                "SIP user with a space",
                with(&[row(&|v| v[4] = "an na".into())]),
                2,
                "sip.user",
                "not a SIP user name",
            ),
            case(
                "short password",
                with(&[row(&|v| v[3] = "SECRET".into())]),
                2,
                "sip.password",
                "shorter than 12",
            ),
            case(
                "password that would end baresip's value",
                with(&[row(&|v| v[3] = "SECRETSECRET;x".into())]),
                2,
                "sip.password",
                "which the VPN and SIP files cannot hold",
            ),
            case(
                "WireGuard key twice",
                with(&[good.clone(), second.replace(KEY2, KEY)]),
                3,
                "vpn.buero.private_key",
                "the same WireGuard key as line 2",
            ),
            case(
                "display name with a line separator",
                with(&[row(&|v| v[1] = "Anna\u{2028}# injected".into())]),
                2,
                "display_name",
                "line separators",
            ),
            case(
                "display name like a formula",
                with(&[row(&|v| v[1] = "=HYPERLINK(1)".into())]),
                2,
                "display_name",
                "not beginning with = + - @",
            ),
            case(
                "password with a quote",
                with(&[row(&|v| v[3] = "\"SECRETSECRET\"\"x\"".into())]),
                2,
                "sip.password",
                "which the VPN and SIP files cannot hold",
            ),
            case(
                "password like a formula",
                with(&[row(&|v| v[3] = "-SECRETSECRET".into())]),
                2,
                "sip.password",
                "beginning with a letter or digit",
            ),
            case(
                "SIP user with an account parameter",
                with(&[row(&|v| v[4] = "ben;answermode=auto".into())]),
                2,
                "sip.user",
                "not a SIP user name",
            ),
            case(
                "generate not filled",
                with(&[row(&|v| v[3] = GENERATE.into())]),
                2,
                "sip.password",
                "not filled yet",
            ),
            case("header only", HEADER.into(), 0, "-", "no users"),
            case("empty file", String::new(), 0, "-", "empty: no header line"),
            case(
                "quote left open",
                with(&[good.clone(), "\"ben,Ben,202,SECRET-password-2".into()]),
                3,
                "-",
                "not CSV",
            ),
        ];
        assert!(cases.len() >= 20);
        let mut failed = Vec::new();
        for c in &cases {
            let text = if c.name == "wrong encoding" {
                latin1.clone()
            } else {
                c.text.clone()
            };
            let errors = match Roster::parse(&text, &p) {
                Err(e) => e,
                Ok(r) => r.check(&p, false),
            };
            let got = errors
                .first()
                .map(|e| (e.line, e.column.clone(), e.to_string()));
            let ok = match (c.name, &got) {
                ("wrong encoding", Some((3, col, msg))) => col == "-" && msg.contains("not UTF-8"),
                (_, Some((line, col, msg))) => {
                    *line == c.line && (col == c.column || c.line == 0) && msg.contains(c.want)
                }
                _ => false,
            };
            let leaked = errors.iter().any(|e| e.to_string().contains("SECRET"));
            if !ok || leaked || errors.len() != 1 {
                failed.push(format!("{}: {errors:?}", c.name));
            } else {
                println!(
                    "case {}: ok ({})",
                    c.name,
                    got.map(|g| g.2).unwrap_or_default()
                );
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn fill_refuses_what_it_cannot_make_and_changes_nothing() {
        let p = profile("10.99.0.0/30"); // one address for users: .2
        let text = roster(&[
            "anna,Anna,201,generate,anna,generate,generate",
            "ben,Ben,202,generate,ben,generate,generate",
        ]);
        let mut r = Roster::parse(text.as_bytes(), &p).unwrap();
        let before = r.clone();
        let e = r.fill(&p).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].column.as_str()), (3, "vpn.buero.address"));
        assert!(e[0].reason.contains("exhausted"));
        assert_eq!(r, before);
        let mut r = Roster::parse(
            roster(&["anna,Anna,generate,generate,anna,generate,generate"]).as_bytes(),
            &p,
        )
        .unwrap();
        let e = r.fill(&p).unwrap_err();
        assert!(
            e[0].reason.contains("cannot generate sip.extension"),
            "{e:?}"
        );
    }
}
