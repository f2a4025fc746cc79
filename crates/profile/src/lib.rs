//! Customer profiles: `customer.toml` and the files it references, checked strictly and
//! rendered into the configuration files the stick's system uses.
//!
//! Every error names the file, the field (TOML path such as `vpn[1].wireguard.endpoint`) and
//! the reason. Per-user secrets are never in customer.toml: rendered files carry `{{slot}}`
//! placeholders that a roster fills per user, and the profile lists them.

#![forbid(unsafe_code)]

pub mod check;
mod direct;
pub mod guide;
pub mod render;
pub mod roster;
pub mod schema;
pub mod write;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use direct::check_direct;
pub use schema::Customer;
use schema::{CustomerToml, Ipsec, OpenVpn, Vpn, WireGuard};

/// Largest referenced file (certificates, keys, logo).
const MAX_REFERENCED_BYTES: u64 = 1 << 20;
/// Largest customer.toml.
const MAX_TOML_BYTES: u64 = 256 << 10;
use homestick_formats::paths::PROFILE_JSON;
/// Certificates closer to expiry than this get a warning.
const EXPIRY_WARNING_DAYS: i64 = 90;

/// A problem with a profile.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A field or file is wrong.
    #[error("{}: {field}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// TOML path of the field, `line N` for syntax errors, or `-` for the file as a whole.
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

/// A file of the profile partition: path and bytes, as the FAT writer takes them.
pub use homestick_image::fat::FatFile as ProfileFile;

pub use homestick_formats::profile::Slot;

/// A referenced file, read and checked.
#[derive(Debug, Clone)]
pub struct Referenced {
    /// Path as written in customer.toml.
    pub rel: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Certificates it holds (for CA files).
    pub certs: Vec<check::CertInfo>,
}

/// A checked VPN connection.
#[derive(Debug, Clone)]
pub struct CheckedVpn {
    /// As written.
    pub toml: Vpn,
    /// Which VPN it is, with its settings (exactly one, checked).
    pub kind: VpnKind,
    /// Whether it is the default (explicit, or the only one).
    pub default: bool,
    /// CA file (OpenVPN, IPsec).
    pub ca: Option<Referenced>,
    /// tls-crypt or tls-auth key (OpenVPN).
    pub tls_key: Option<Referenced>,
}

/// Which VPN a connection is, with its settings.
#[derive(Debug, Clone)]
pub enum VpnKind {
    /// WireGuard.
    WireGuard(WireGuard),
    /// OpenVPN.
    OpenVpn(OpenVpn),
    /// IPsec/IKEv2 with strongSwan.
    Ipsec(Ipsec),
}

impl VpnKind {
    /// The kind, if `v` gives exactly one.
    pub fn from_toml(v: &Vpn) -> Option<VpnKind> {
        match (&v.wireguard, &v.openvpn, &v.ipsec) {
            (Some(w), None, None) => Some(VpnKind::WireGuard(w.clone())),
            (None, Some(o), None) => Some(VpnKind::OpenVpn(o.clone())),
            (None, None, Some(i)) => Some(VpnKind::Ipsec(i.clone())),
            _ => None,
        }
    }

    /// How many kind tables `v` gives.
    pub fn given(v: &Vpn) -> usize {
        [
            v.wireguard.is_some(),
            v.openvpn.is_some(),
            v.ipsec.is_some(),
        ]
        .iter()
        .filter(|&&k| k)
        .count()
    }

    /// `wireguard`, `openvpn` or `ipsec`.
    pub fn name(&self) -> &'static str {
        match self {
            VpnKind::WireGuard(_) => "wireguard",
            VpnKind::OpenVpn(_) => "openvpn",
            VpnKind::Ipsec(_) => "ipsec",
        }
    }
}

impl CheckedVpn {
    /// `wireguard`, `openvpn` or `ipsec`.
    pub fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Where it connects to (first remote for OpenVPN).
    pub fn endpoint(&self) -> String {
        match &self.kind {
            VpnKind::WireGuard(w) => w.endpoint.clone(),
            // The check requires at least one remote; "" would only show in a summary.
            VpnKind::OpenVpn(o) => o.remotes.first().cloned().unwrap_or_default(),
            VpnKind::Ipsec(i) => i.server.clone(),
        }
    }
}

/// A loaded, checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The customer.
    pub customer: Customer,
    /// The VPN connections.
    pub vpn: Vec<CheckedVpn>,
    /// The softphone.
    pub softphone: Option<schema::Softphone>,
    /// Softphone CA file.
    pub softphone_ca: Option<Referenced>,
    /// Logo file.
    pub logo: Option<Referenced>,
    /// Destinations allowed outside the tunnel (checked), none by default.
    pub direct: Vec<schema::Direct>,
    /// Things worth knowing that do not stop a build (certificates near expiry).
    pub warnings: Vec<String>,
    /// The rendered files of the profile partition, sorted, profile.json included.
    pub files: Vec<ProfileFile>,
    /// profile.json's document (its slots are the per-user values a roster fills).
    pub doc: homestick_formats::profile::ProfileDoc,
}

/// Checks with the file name bound in.
struct Ctx<'a> {
    file: &'a Path,
    dir: &'a Path,
    root: PathBuf,
    now: i64,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> ProfileError {
        invalid(self.file, field, reason)
    }

    fn chk(&self, field: &str, r: Result<impl Sized, check::Invalid>) -> Result<(), ProfileError> {
        r.map(|_| ()).map_err(|e| self.err(field, e.0))
    }

    /// Read a file named in customer.toml: inside the profile directory, regular, bounded.
    fn referenced(&self, field: &str, rel: &str) -> Result<Referenced, ProfileError> {
        if rel.is_empty() || Path::new(rel).is_absolute() {
            return Err(self.err(
                field,
                format!("{rel:?}: give a path relative to the profile directory"),
            ));
        }
        let p = self.dir.join(rel);
        let canon = fs::canonicalize(&p)
            .map_err(|e| self.err(field, format!("{rel:?}: {}", io_reason(&e))))?;
        if !canon.starts_with(&self.root) {
            return Err(self.err(field, format!("{rel:?} leaves the profile directory")));
        }
        let meta = fs::metadata(&canon)
            .map_err(|e| self.err(field, format!("{rel:?}: {}", io_reason(&e))))?;
        if !meta.is_file() {
            return Err(self.err(field, format!("{rel:?} is not a regular file")));
        }
        if meta.len() > MAX_REFERENCED_BYTES {
            return Err(self.err(
                field,
                format!(
                    "{rel:?} is {} bytes, over the limit of {MAX_REFERENCED_BYTES}",
                    meta.len()
                ),
            ));
        }
        let data =
            fs::read(&canon).map_err(|e| self.err(field, format!("{rel:?}: {}", io_reason(&e))))?;
        Ok(Referenced {
            rel: rel.to_string(),
            data,
            certs: vec![],
        })
    }

    /// A CA bundle: every certificate parses and is valid at build time.
    fn ca(&mut self, field: &str, rel: &str) -> Result<Referenced, ProfileError> {
        let mut r = self.referenced(field, rel)?;
        let text = std::str::from_utf8(&r.data)
            .map_err(|_| self.err(field, format!("{rel:?} is not a PEM text file")))?;
        let certs =
            check::pem_certificates(text).map_err(|e| self.err(field, format!("{rel:?} {e}")))?;
        for c in &certs {
            if c.not_after < self.now {
                return Err(self.err(
                    field,
                    format!(
                        "{rel:?}: certificate {:?} expired on {}",
                        c.subject,
                        homestick_image::fat::rfc3339(c.not_after)
                    ),
                ));
            }
            if c.not_before > self.now {
                self.warnings.push(format!(
                    "{field}: {rel:?}: certificate {:?} is not valid before {}",
                    c.subject,
                    homestick_image::fat::rfc3339(c.not_before)
                ));
            }
            let days = (c.not_after - self.now) / 86_400;
            if days < EXPIRY_WARNING_DAYS {
                self.warnings.push(format!(
                    "{field}: {rel:?}: certificate {:?} expires in {days} days",
                    c.subject
                ));
            }
        }
        r.certs = certs;
        Ok(r)
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".into(),
        _ => e.to_string(),
    }
}

fn text_field(ctx: &Ctx<'_>, field: &str, v: &str, max: usize) -> Result<(), ProfileError> {
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ctx.err(field, format!("must be 1 to {max} printable characters")));
    }
    Ok(())
}

fn check_customer(ctx: &mut Ctx<'_>, c: &Customer) -> Result<Option<Referenced>, ProfileError> {
    let slug_ok = (2..=63).contains(&c.id.len())
        && c.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !c.id.starts_with('-')
        && !c.id.ends_with('-');
    if !slug_ok {
        return Err(ctx.err(
            "customer.id",
            format!(
                "{:?} is not a slug (2-63 of a-z, 0-9 and '-', not starting or ending with '-')",
                c.id
            ),
        ));
    }
    text_field(ctx, "customer.name", &c.name, 100)?;
    for (field, v) in [
        ("customer.hotline", &c.hotline),
        ("customer.email", &c.email),
        ("customer.hours", &c.hours),
    ] {
        if let Some(v) = v {
            text_field(ctx, field, v, 200)?;
        }
    }
    if let Some(e) = &c.email {
        let ok = e
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && check::host(d).is_ok());
        if !ok {
            return Err(ctx.err("customer.email", format!("{e:?} is not an e-mail address")));
        }
    }
    if let Some(h) = &c.hotline {
        if !h
            .chars()
            .all(|ch| ch.is_ascii_digit() || " +-/()".contains(ch))
            || !h.chars().any(|ch| ch.is_ascii_digit())
        {
            return Err(ctx.err(
                "customer.hotline",
                format!("{h:?} is not a phone number (digits, spaces and + - / ( ))"),
            ));
        }
    }
    if let Some(langs) = &c.languages {
        if langs.is_empty() {
            return Err(ctx.err("customer.languages", "give at least one of \"de\", \"en\""));
        }
        for (i, l) in langs.iter().enumerate() {
            if l != "de" && l != "en" {
                return Err(ctx.err(
                    &format!("customer.languages[{i}]"),
                    format!("{l:?} is not supported (de, en)"),
                ));
            }
        }
    }
    match &c.logo {
        Some(rel) => {
            let r = ctx.referenced("customer.logo", rel)?;
            let png = r.data.starts_with(b"\x89PNG\r\n\x1a\n");
            let svg = rel.ends_with(".svg")
                && std::str::from_utf8(&r.data).is_ok_and(|t| t.contains("<svg"));
            if !png && !svg {
                return Err(ctx.err(
                    "customer.logo",
                    format!("{rel:?} is neither a PNG nor an SVG image"),
                ));
            }
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// OpenVPN data ciphers homestick accepts (AEAD only).
const OVPN_CIPHERS: &[&str] = &["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"];
/// Codecs the rendered softphone configuration supports.
pub const CODECS: &[&str] = &["opus", "G722", "PCMA", "PCMU"];

fn check_vpns(ctx: &mut Ctx<'_>, vpns: &[Vpn]) -> Result<Vec<CheckedVpn>, ProfileError> {
    if vpns.is_empty() {
        return Err(ctx.err("vpn", "at least one [[vpn]] connection is needed"));
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut default_at: Option<usize> = None;
    let mut out = Vec::new();
    for (i, v) in vpns.iter().enumerate() {
        let f = |s: &str| format!("vpn[{i}].{s}");
        check_vpn_name(ctx, &f("name"), &v.name)?;
        if let Some(j) = names.insert(&v.name, i) {
            return Err(ctx.err(
                &f("name"),
                format!("{:?} is already the name of vpn[{j}]", v.name),
            ));
        }
        if v.default {
            if let Some(j) = default_at {
                return Err(ctx.err(
                    &f("default"),
                    format!("only one connection can be the default; vpn[{j}] already is"),
                ));
            }
            default_at = Some(i);
        }
        let kind = VpnKind::from_toml(v).ok_or_else(|| {
            ctx.err(
                &format!("vpn[{i}]"),
                format!(
                    "give exactly one of [vpn.wireguard], [vpn.openvpn], [vpn.ipsec] (found {})",
                    VpnKind::given(v)
                ),
            )
        })?;
        check_routes(ctx, &f, v)?;
        let (ca, tls_key) = match &kind {
            VpnKind::WireGuard(w) => {
                check_wireguard(ctx, &f, w)?;
                (None, None)
            }
            VpnKind::OpenVpn(o) => {
                let (ca, key) = check_openvpn(ctx, &f, o)?;
                (Some(ca), Some(key))
            }
            VpnKind::Ipsec(s) => (Some(check_ipsec(ctx, &f, s)?), None),
        };
        out.push(CheckedVpn {
            toml: v.clone(),
            kind,
            default: false,
            ca,
            tls_key,
        });
    }
    match (default_at, out.len()) {
        (Some(i), _) => out[i].default = true,
        (None, 1) => out[0].default = true,
        (None, _) => {
            return Err(ctx.err("vpn", "several connections: mark one with default = true"))
        }
    }
    Ok(out)
}

fn check_vpn_name(ctx: &Ctx<'_>, field: &str, name: &str) -> Result<(), ProfileError> {
    let ok = (1..=15).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(ctx.err(field, format!("{name:?}: 1-15 of a-z, 0-9 and '-', starting with a letter (it names the network interface)")));
    }
    Ok(())
}

fn check_routes(ctx: &Ctx<'_>, f: &dyn Fn(&str) -> String, v: &Vpn) -> Result<(), ProfileError> {
    if v.routes.is_empty() {
        return Err(ctx.err(
            &f("routes"),
            "at least one route (0.0.0.0/0 sends everything through the VPN)",
        ));
    }
    for (j, r) in v.routes.iter().enumerate() {
        ctx.chk(&f(&format!("routes[{j}]")), check::cidr(r))?;
    }
    for (j, d) in v.dns.iter().enumerate() {
        ctx.chk(&f(&format!("dns[{j}]")), check::ip(d))?;
    }
    for (j, d) in v.dns_search.iter().enumerate() {
        ctx.chk(&f(&format!("dns_search[{j}]")), check::domain(d))?;
    }
    Ok(())
}

fn check_wireguard(
    ctx: &Ctx<'_>,
    f: &dyn Fn(&str) -> String,
    w: &WireGuard,
) -> Result<(), ProfileError> {
    ctx.chk(&f("wireguard.endpoint"), check::host_port(&w.endpoint))?;
    ctx.chk(
        &f("wireguard.server_public_key"),
        check::base64_key(&w.server_public_key, 32, "WireGuard key"),
    )?;
    if !(1280..=1500).contains(&w.mtu) {
        return Err(ctx.err(
            &f("wireguard.mtu"),
            format!("{} is not in 1280..=1500", w.mtu),
        ));
    }
    if let Some(pool) = &w.address_pool {
        ctx.chk(&f("wireguard.address_pool"), check::address_pool(pool))?;
    }
    if w.persistent_keepalive != 0 && !(10..=3600).contains(&w.persistent_keepalive) {
        return Err(ctx.err(
            &f("wireguard.persistent_keepalive"),
            format!(
                "{} is not 0 (off) or in 10..=3600 seconds",
                w.persistent_keepalive
            ),
        ));
    }
    Ok(())
}

/// The CA and the control-channel key of an OpenVPN connection.
fn check_openvpn(
    ctx: &mut Ctx<'_>,
    f: &dyn Fn(&str) -> String,
    o: &OpenVpn,
) -> Result<(Referenced, Referenced), ProfileError> {
    if o.remotes.is_empty() {
        return Err(ctx.err(&f("openvpn.remotes"), "at least one server host:port"));
    }
    for (j, r) in o.remotes.iter().enumerate() {
        ctx.chk(&f(&format!("openvpn.remotes[{j}]")), check::host_port(r))?;
    }
    if o.ciphers.is_empty() {
        return Err(ctx.err(
            &f("openvpn.ciphers"),
            format!("at least one of {}", OVPN_CIPHERS.join(", ")),
        ));
    }
    for (j, c) in o.ciphers.iter().enumerate() {
        if !OVPN_CIPHERS.contains(&c.as_str()) {
            return Err(ctx.err(
                &f(&format!("openvpn.ciphers[{j}]")),
                format!(
                    "{c:?} is not an allowed data cipher ({})",
                    OVPN_CIPHERS.join(", ")
                ),
            ));
        }
    }
    let ca = ctx.ca(&f("openvpn.ca"), &o.ca)?;
    let (field, rel) = match (&o.tls_crypt, &o.tls_auth) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(&f("openvpn"), "give one of tls_crypt or tls_auth, not both"))
        }
        (Some(k), None) => ("openvpn.tls_crypt", k),
        (None, Some(k)) => ("openvpn.tls_auth", k),
        (None, None) => {
            return Err(ctx.err(
                &f("openvpn"),
                "give tls_crypt (preferred) or tls_auth: a control-channel key",
            ))
        }
    };
    let key = ctx.referenced(&f(field), rel)?;
    let text = String::from_utf8_lossy(&key.data);
    ctx.chk(
        &f(field),
        check::openvpn_static_key(&text).map_err(|e| check::Invalid(format!("{rel:?} {e}"))),
    )?;
    Ok((ca, key))
}

/// The CA of an IPsec connection.
fn check_ipsec(
    ctx: &mut Ctx<'_>,
    f: &dyn Fn(&str) -> String,
    s: &Ipsec,
) -> Result<Referenced, ProfileError> {
    ctx.chk(&f("ipsec.server"), check::host(&s.server))?;
    text_field(ctx, &f("ipsec.server_id"), &s.server_id, 200)?;
    if s.server_id.contains(char::is_whitespace) || s.server_id.contains('"') {
        return Err(ctx.err(
            &f("ipsec.server_id"),
            format!("{:?} must not contain spaces or quotes", s.server_id),
        ));
    }
    for (key, list) in [
        ("ipsec.ike_proposals", &s.ike_proposals),
        ("ipsec.esp_proposals", &s.esp_proposals),
    ] {
        if list.is_empty() {
            return Err(ctx.err(&f(key), "at least one proposal"));
        }
        for (j, p) in list.iter().enumerate() {
            ctx.chk(&f(&format!("{key}[{j}]")), check::proposal(p))?;
        }
    }
    ctx.ca(&f("ipsec.ca"), &s.ca)
}

fn check_softphone(
    ctx: &mut Ctx<'_>,
    s: &schema::Softphone,
) -> Result<Option<Referenced>, ProfileError> {
    ctx.chk("softphone.registrar", check::sip_uri(&s.registrar))?;
    if let Some(p) = &s.outbound_proxy {
        ctx.chk("softphone.outbound_proxy", check::sip_uri(p))?;
    }
    if s.codecs.is_empty() {
        return Err(ctx.err(
            "softphone.codecs",
            format!("at least one of {}", CODECS.join(", ")),
        ));
    }
    let mut seen = Vec::new();
    for (i, c) in s.codecs.iter().enumerate() {
        if !CODECS.contains(&c.as_str()) {
            return Err(ctx.err(
                &format!("softphone.codecs[{i}]"),
                format!("{c:?} is not supported ({})", CODECS.join(", ")),
            ));
        }
        if seen.contains(c) {
            return Err(ctx.err(
                &format!("softphone.codecs[{i}]"),
                format!("{c:?} is listed twice"),
            ));
        }
        seen.push(c.clone());
    }
    for (field, v) in [("softphone.stun", &s.stun), ("softphone.turn", &s.turn)] {
        if let Some(v) = v {
            ctx.chk(field, check::host_port(v))?;
        }
    }
    let number_ok = |n: &str| {
        (2..=16).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    };
    if let Some(vm) = &s.voicemail {
        if !number_ok(vm) {
            return Err(ctx.err(
                "softphone.voicemail",
                format!("{vm:?} is not a dialable number (digits, * and #)"),
            ));
        }
    }
    if s.emergency_numbers.is_empty() {
        return Err(ctx.err(
            "softphone.emergency_numbers",
            "at least one number that must always be dialable (in Germany 110 and 112)",
        ));
    }
    for (i, n) in s.emergency_numbers.iter().enumerate() {
        if !(2..=6).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ctx.err(
                &format!("softphone.emergency_numbers[{i}]"),
                format!("{n:?} is not a short emergency number (2-6 digits)"),
            ));
        }
    }
    if s.srtp != schema::Srtp::Off && s.transport != schema::Transport::Tls {
        ctx.warnings.push("softphone: SRTP keys travel in SIP messages; without transport = \"tls\" they are readable on the network".into());
    }
    match &s.ca {
        Some(rel) => Ok(Some(ctx.ca("softphone.ca", rel)?)),
        None => Ok(None),
    }
}

/// toml's messages span lines with a source excerpt; keep the reason only.
fn toml_reason(e: &toml::de::Error) -> String {
    e.message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Profile {
    /// Load, check and render the profile in `dir`. `now` (Unix seconds, the build time) is
    /// what certificates must be valid at.
    pub fn load(dir: &Path, now: i64) -> Result<Profile, ProfileError> {
        let (file, text) = read_customer_toml(dir)?;
        let parsed = parse_customer_toml(&file, &text)?;
        let root = fs::canonicalize(dir).map_err(|e| invalid(dir, "-", e.to_string()))?;
        let mut ctx = Ctx {
            file: &file,
            dir,
            root,
            now,
            warnings: Vec::new(),
        };
        let logo = check_customer(&mut ctx, &parsed.customer)?;
        let vpn = check_vpns(&mut ctx, &parsed.vpn)?;
        let softphone_ca = match &parsed.softphone {
            Some(s) => check_softphone(&mut ctx, s)?,
            None => None,
        };
        check_direct(&ctx, &parsed.network.direct, &parsed.vpn)?;
        let mut p = Profile {
            dir: dir.to_path_buf(),
            customer: parsed.customer,
            vpn,
            softphone: parsed.softphone,
            softphone_ca,
            logo,
            direct: parsed.network.direct,
            warnings: ctx.warnings,
            files: Vec::new(),
            doc: empty_doc(),
        };
        let (files, doc) = render::render(&p).map_err(|e| match e {
            render::RenderError::Unwritable { field, source } => {
                invalid(&file, &field, source.to_string())
            }
            e => invalid(&file, "-", e.to_string()),
        })?;
        p.files = files;
        p.doc = doc;
        Ok(p)
    }

    /// The per-user values a roster fills.
    pub fn slots(&self) -> &[Slot] {
        &self.doc.slots
    }
}

/// A placeholder document until the profile is rendered.
fn empty_doc() -> homestick_formats::profile::ProfileDoc {
    homestick_formats::profile::ProfileDoc {
        format: homestick_formats::profile::FORMAT.into(),
        customer: Customer {
            id: String::new(),
            name: String::new(),
            hotline: None,
            email: None,
            hours: None,
            languages: None,
            logo: None,
        },
        vpn: Vec::new(),
        softphone: None,
        network: None,
        slots: Vec::new(),
        files: Vec::new(),
        user: None,
    }
}

/// Keep serde's list of allowed values where it helps (enums), compactly.
fn expected_hint(reason: &str) -> String {
    match reason.split_once(", expected ") {
        Some((head, exp)) if head.starts_with("unknown variant") => {
            format!(" (expected {})", exp.trim())
        }
        _ => String::new(),
    }
}

/// Why the profile summary of an image could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileJsonError {
    /// The manifest has no profile partition.
    #[error("the manifest lists no profile partition")]
    NoPartition,
    /// The profile partition's FAT or file cannot be read.
    #[error("{0}")]
    Fat(#[source] std::io::Error),
    /// There is no profile.json.
    #[error("no profile.json")]
    Missing,
    /// profile.json is not a profile document this program reads.
    #[error("{0}")]
    Doc(#[source] homestick_formats::profile::ProfileJsonError),
}

/// Read `profile.json` from the profile partition that `m` describes on `disk` (not verified:
/// for `inspect`).
pub fn read_profile_json<D: homestick_image::disk::Disk + ?Sized>(
    disk: &D,
    m: &homestick_image::manifest::Manifest,
) -> Result<homestick_formats::profile::ProfileDoc, ProfileJsonError> {
    use homestick_image::fat::{budget_for, FatReader};
    let p = m
        .partitions
        .iter()
        .find(|p| p.name == "profile")
        .ok_or(ProfileJsonError::NoPartition)?;
    let fat = FatReader::open(disk, p.offset(), p.len(), budget_for(p.len()))
        .map_err(ProfileJsonError::Fat)?;
    let bytes = fat
        .read(PROFILE_JSON, homestick_formats::profile::MAX_BYTES)
        .map_err(ProfileJsonError::Fat)?
        .ok_or(ProfileJsonError::Missing)?;
    homestick_formats::profile::ProfileDoc::parse(&bytes).map_err(ProfileJsonError::Doc)
}

/// The profile's customer.toml: its path and text (bounded, UTF-8).
fn read_customer_toml(dir: &Path) -> Result<(PathBuf, String), ProfileError> {
    let meta = fs::metadata(dir)
        .map_err(|e| invalid(dir, "-", format!("profile directory: {}", io_reason(&e))))?;
    if !meta.is_dir() {
        return Err(invalid(
            dir,
            "-",
            "not a directory (give the profile directory)",
        ));
    }
    let file = dir.join("customer.toml");
    let fmeta = fs::metadata(&file)
        .map_err(|e| invalid(&file, "-", format!("cannot read: {}", io_reason(&e))))?;
    if fmeta.len() > MAX_TOML_BYTES {
        return Err(invalid(
            &file,
            "-",
            format!("{} bytes, over the limit of {MAX_TOML_BYTES}", fmeta.len()),
        ));
    }
    let bytes = fs::read(&file)
        .map_err(|e| invalid(&file, "-", format!("cannot read: {}", io_reason(&e))))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid(&file, "-", "not UTF-8 text"))?;
    Ok((file, text))
}

/// Parse customer.toml; an error names the line (syntax) or the TOML path of the field.
fn parse_customer_toml(file: &Path, text: &str) -> Result<CustomerToml, ProfileError> {
    let value: toml::Value = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or("-".to_string(), |s| {
            format!("line {}", line_of(text, s.start))
        });
        invalid(file, &at, toml_reason(&e))
    })?;
    // Unknown fields are collected by serde_ignored with their typed path; the schema does not
    // deny them itself, so the loader can name the field without reading serde's message.
    let mut unknown: Option<(String, String)> = None;
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    let parsed = serde_ignored::deserialize(de, |path| {
        unknown.get_or_insert_with(|| (path_text(&path), last_key(&path)));
    });
    // The first problem in the file wins: an unknown field met before an error is reported.
    if let Some((field, name)) = unknown {
        return Err(invalid(file, &field, format!("unknown field `{name}`")));
    }
    parsed.map_err(|e| field_error(file, &serde_path_to_error::Error::new(track.path(), e)))
}

/// `vpn[0].wireguard.private_key`: a serde_ignored path in the form the other messages use.
fn path_text(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", path_text(parent)),
        P::Map { parent, key } => match path_text(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            path_text(parent)
        }
    }
}

/// The name of the field a serde_ignored path ends in.
fn last_key(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Map { key, .. } => key.clone(),
        P::Root => String::new(),
        P::Seq { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => last_key(parent),
    }
}

/// A schema error at its field, by serde_path_to_error's path.
fn field_error(file: &Path, e: &serde_path_to_error::Error<toml::de::Error>) -> ProfileError {
    let reason = e
        .inner()
        .to_string()
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("in `"))
        .collect::<Vec<_>>()
        .join("; ");
    let field = match e.path().to_string() {
        p if p == "." || p.is_empty() => "-".to_string(),
        p => p,
    };
    // For an unknown enum value keep serde's list of the allowed ones, compactly.
    let short = if reason.starts_with("unknown variant") {
        reason
            .split(", expected")
            .next()
            .unwrap_or(&reason)
            .to_string()
            + &expected_hint(&reason)
    } else {
        reason.clone()
    };
    invalid(file, &field, short)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[customer]\nid = \"stadt-a\"\nname = \"Stadt A\"\n\n\
        [[vpn]]\nname = \"office\"\nroutes = [\"10.0.0.0/8\"]\n\n\
        [vpn.wireguard]\nendpoint = \"vpn.example.org:51820\"\n\
        server_public_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\n";

    fn field_of(text: &str) -> Result<(String, String), String> {
        match parse_customer_toml(Path::new("customer.toml"), text) {
            Err(ProfileError::Invalid { field, reason, .. }) => Ok((field, reason)),
            Ok(_) => Err("accepted".into()),
        }
    }

    /// Check MINIMAL plus `extra` as far as the allow-list: the field and reason of its error.
    fn direct_error(extra: &str) -> Result<(), (String, String)> {
        direct_error_in(MINIMAL, extra)
    }

    /// [`direct_error`] on another base profile.
    fn direct_error_in(base: &str, extra: &str) -> Result<(), (String, String)> {
        let file = Path::new("customer.toml");
        let parsed = parse_customer_toml(file, &format!("{base}{extra}")).map_err(|e| match e {
            ProfileError::Invalid { field, reason, .. } => (field, reason),
        })?;
        let ctx = Ctx {
            file,
            dir: Path::new("."),
            root: PathBuf::from("."),
            now: 0,
            warnings: vec![],
        };
        check_direct(&ctx, &parsed.network.direct, &parsed.vpn).map_err(|e| match e {
            ProfileError::Invalid { field, reason, .. } => (field, reason),
        })
    }

    #[test]
    fn the_direct_allow_list_is_checked_field_by_field() {
        let entry = |to: &str, ports: &str| {
            format!("\n[[network.direct]]\nname = \"video\"\nto = \"{to}\"\nports = [{ports}]\n")
        };
        for ok in [
            entry("198.51.100.0/24", "\"udp/3478-3481\", \"tcp/443\""),
            entry("2001:db8::/48", "\"tcp/443\""),
            entry("203.0.113.7", "\"udp/10000-20000\""),
            String::new(),
        ] {
            assert_eq!(direct_error(&ok), Ok(()), "{ok}");
        }
        // A host name is resolved through the tunnel's DNS: with the VPN's dns it is taken.
        let with_dns = MINIMAL.replace("routes = ", "dns = [\"10.0.0.53\"]\nroutes = ");
        assert_eq!(
            direct_error_in(&with_dns, &entry("portal.example.net", "\"tcp/80\"")),
            Ok(())
        );
        let cases: &[(&str, String, &str, &str)] = &[
            (
                "whole internet",
                entry("0.0.0.0/0", "\"tcp/443\""),
                "network.direct[0].to",
                "leaves no kill switch",
            ),
            (
                "inside a tunnel route",
                entry("10.20.0.0/16", "\"tcp/443\""),
                "network.direct[0].to",
                "overlaps vpn[0].routes[0] 10.0.0.0/8",
            ),
            (
                "address inside a route",
                entry("10.1.2.3", "\"tcp/443\""),
                "network.direct[0].to",
                "overlaps vpn[0].routes[0]",
            ),
            (
                "not a host",
                entry("bad host", "\"tcp/443\""),
                "network.direct[0].to",
                "bad host",
            ),
            (
                "host name without the tunnel's DNS",
                entry("portal.example.net", "\"tcp/80\", \"tcp/443\""),
                "network.direct[0].to",
                "the default VPN has no dns to resolve it through the tunnel",
            ),
            (
                "no ports",
                entry("203.0.113.7", ""),
                "network.direct[0].ports",
                "give 1 to 16 ports",
            ),
            (
                "other protocol",
                entry("203.0.113.7", "\"icmp/1\""),
                "network.direct[0].ports[0]",
                "protocol \"icmp\" is not tcp or udp",
            ),
            (
                "port 0",
                entry("203.0.113.7", "\"tcp/0\""),
                "network.direct[0].ports[0]",
                "\"0\" is not a port",
            ),
            (
                "port too high",
                entry("203.0.113.7", "\"tcp/65536\""),
                "network.direct[0].ports[0]",
                "is not a port",
            ),
            (
                "backwards range",
                entry("203.0.113.7", "\"udp/20-10\""),
                "network.direct[0].ports[0]",
                "runs backwards",
            ),
            (
                "no protocol",
                entry("203.0.113.7", "\"443\""),
                "network.direct[0].ports[0]",
                "is not PROTO/PORT",
            ),
            (
                "same name twice",
                format!(
                    "{}{}",
                    entry("203.0.113.7", "\"tcp/443\""),
                    entry("203.0.113.8", "\"tcp/443\"")
                ),
                "network.direct[1].name",
                "already network.direct[0]",
            ),
            (
                "bad name",
                entry("203.0.113.7", "\"tcp/443\"").replace("video", "Video Calls"),
                "network.direct[0].name",
                "not 1-32 of a-z",
            ),
            (
                "unknown field",
                entry("203.0.113.7", "\"tcp/443\"") + "via = \"eth0\"\n",
                "network.direct[0].via",
                "unknown field",
            ),
        ];
        let mut failed = Vec::new();
        for (name, extra, field, want) in cases {
            match direct_error(extra) {
                Err((f, r)) if f == *field && r.contains(want) => {}
                other => failed.push(format!("{name}: {other:?}")),
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn the_minimal_profile_parses() {
        parse_customer_toml(Path::new("customer.toml"), MINIMAL).unwrap();
    }

    #[test]
    fn unknown_fields_are_named_by_their_path() {
        let cases = [
            ("fax = \"1\"\n", "[customer]\n", "customer.fax"),
            ("[printer]\nname = \"x\"\n", "", "printer"),
            ("gateway = \"x\"\n", "routes = [", "vpn[0].gateway"),
            (
                "private_key = \"x\"\n",
                "[vpn.wireguard]\n",
                "vpn[0].wireguard.private_key",
            ),
        ];
        let mut failed = Vec::new();
        for (add, after, want) in cases {
            let text = if after.is_empty() {
                format!("{MINIMAL}{add}")
            } else if after.ends_with('\n') {
                MINIMAL.replacen(after, &format!("{after}{add}"), 1)
            } else {
                MINIMAL.replacen(after, &format!("{add}{after}"), 1)
            };
            let name = want.rsplit('.').next().unwrap_or(want);
            match field_of(&text) {
                Ok((f, r)) if f == want && r == format!("unknown field `{name}`") => {}
                other => failed.push(format!("{want}: {other:?}")),
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }
}
