//! `[[network.direct]]`: the allow-list of destinations outside the tunnel.

use super::{check, schema, Ctx, ProfileError};
use schema::Vpn;

/// Most `[[network.direct]]` entries, and ports per entry.
const MAX_DIRECT: usize = 32;
const MAX_DIRECT_PORTS: usize = 16;

/// Whether two networks share an address.
fn overlaps((a, alen): (std::net::IpAddr, u8), (b, blen): (std::net::IpAddr, u8)) -> bool {
    let bits = |ip: std::net::IpAddr| -> (u128, u8) {
        match ip {
            std::net::IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
            std::net::IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((x, xw), (y, yw)) = (bits(a), bits(b));
    if xw != yw {
        return false;
    }
    // Both are left-aligned in 128 bits, so a prefix length counts from the top either way.
    let len = u32::from(alen.min(blen));
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    x & mask == y & mask
}

/// `network.direct[i].to`: an address or network (at least /8) that no tunnel route covers,
/// or a host name the default VPN's DNS resolves. `field` names it in errors.
fn check_direct_to(ctx: &Ctx<'_>, field: &str, to: &str, vpns: &[Vpn]) -> Result<(), ProfileError> {
    let net = if to.contains('/') {
        Some(check::cidr(to).map_err(|e| ctx.err(field, e.0))?)
    } else if let Ok(ip) = check::ip(to) {
        Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
    } else {
        ctx.chk(field, check::host(to))?;
        // A name is resolved on the stick through the tunnel's DNS once the tunnel is up;
        // without one the home router would answer (and see) it.
        let default = vpns
            .iter()
            .find(|v| v.default)
            .or_else(|| vpns.first().filter(|_| vpns.len() == 1));
        if default.is_some_and(|v| v.dns.is_empty()) {
            return Err(ctx.err(
                field,
                format!("{:?} is a host name, and the default VPN has no dns to resolve it through the tunnel (the home router would): give its address or network, or the VPN's dns", to),
            ));
        }
        None
    };
    if let Some((ip, len)) = net {
        if len < 8 {
            return Err(ctx.err(
                field,
                format!("{:?} is /{len}: allowing that much outside the tunnel leaves no kill switch (at least /8)", to),
            ));
        }
        for (vi, v) in vpns.iter().enumerate() {
            for (ri, r) in v.routes.iter().enumerate() {
                if let Ok(route) = check::cidr(r) {
                    if route.1 > 0 && overlaps((ip, len), route) {
                        return Err(ctx.err(
                            field,
                            format!("{:?} overlaps vpn[{vi}].routes[{ri}] {r}: it would go through the tunnel, not around it", to),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The allow-list of destinations outside the tunnel: each named once, an address, network
/// or host name that no tunnel route covers (it would leave the tunnel) and that is not the
/// whole internet (no kill switch then), with explicit ports.
pub(crate) fn check_direct(
    ctx: &Ctx<'_>,
    direct: &[schema::Direct],
    vpns: &[Vpn],
) -> Result<(), ProfileError> {
    if direct.len() > MAX_DIRECT {
        return Err(ctx.err(
            "network.direct",
            format!("{} entries, at most {MAX_DIRECT}", direct.len()),
        ));
    }
    for (i, d) in direct.iter().enumerate() {
        let f = |field: &str| format!("network.direct[{i}].{field}");
        let name_ok = (1..=32).contains(&d.name.len())
            && d.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(ctx.err(
                &f("name"),
                format!("{:?} is not 1-32 of a-z, 0-9 and '-'", d.name),
            ));
        }
        if let Some(j) = direct[..i].iter().position(|o| o.name == d.name) {
            return Err(ctx.err(
                &f("name"),
                format!("{:?} is already network.direct[{j}]", d.name),
            ));
        }
        check_direct_to(ctx, &f("to"), &d.to, vpns)?;
        if d.ports.is_empty() || d.ports.len() > MAX_DIRECT_PORTS {
            return Err(ctx.err(
                &f("ports"),
                format!("give 1 to {MAX_DIRECT_PORTS} ports (tcp/443, udp/3478-3481)"),
            ));
        }
        for (k, p) in d.ports.iter().enumerate() {
            homestick_formats::endpoint::PortRange::parse(p)
                .map_err(|e| ctx.err(&f(&format!("ports[{k}]")), e.to_string()))?;
        }
    }
    Ok(())
}
