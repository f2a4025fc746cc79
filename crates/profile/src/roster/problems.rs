//! Why a roster value, a file a roster names, or a value to generate cannot be used. Each
//! message names the problem, never the value: the values are secrets.

use std::net::Ipv4Addr;

use homestick_formats::slot::SlotName;

use super::PASSWORD_SPECIALS;

/// Why a value is not one its slot's kind allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Nothing given.
    #[error("empty")]
    Empty,
    /// A certificate or key slot without PEM.
    #[error("not a PEM file: give the path of the user's PEM file, relative to the roster")]
    NotPem,
    /// Not base64 of 32 bytes (in its canonical form).
    #[error("not a WireGuard key (base64 of 32 bytes)")]
    WireGuardKey,
    /// Not `a.b.c.d/32`.
    #[error("not an IPv4 tunnel address with /32, e.g. 10.99.0.17/32")]
    Address,
    /// Not 1 to 15 digits.
    #[error("not 1 to 15 digits")]
    Extension,
    /// Not a SIP user name.
    #[error(
        "not a SIP user name: 1 to 64 of A-Z a-z 0-9 . _ - +, beginning with a letter or digit"
    )]
    SipUser,
    /// Not a VPN user name.
    #[error(
        "not a user name: 1 to 128 of A-Z a-z 0-9 . _ - + @, beginning with a letter or digit"
    )]
    Identity,
    /// A password under 12 characters.
    #[error("shorter than 12 characters")]
    ShortPassword,
    /// A password with a character the rendered files cannot hold.
    #[error("has a character which the VPN and SIP files cannot hold: give at most 128 of A-Z a-z 0-9 and {PASSWORD_SPECIALS}, beginning with a letter or digit")]
    PasswordCharacters,
    /// A certificate or key that does not parse or is not allowed; the reason from the check.
    #[error("the PEM file {0}")]
    Pem(String),
    /// A tunnel address outside its VPN's pool.
    #[error("outside the address pool {0}/{1}")]
    OutsidePool(Ipv4Addr, u8),
    /// The pool's network, broadcast or server address.
    #[error("the network, broadcast or server address of the pool {0}/{1}")]
    Reserved(Ipv4Addr, u8),
}

/// Why a file a roster names cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// An absolute path.
    #[error("an absolute path; give a path relative to the roster's directory")]
    Absolute,
    /// A path with `..`.
    #[error("'..' leaves the roster's directory")]
    ParentDir,
    /// A symbolic link on the way (ELOOP).
    #[error("a symbolic link (or a path through one); name the file itself")]
    Symlink,
    /// The path leaves the directory another way (EXDEV).
    #[error("it leaves the roster's directory")]
    Leaves,
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// Opening or reading failed otherwise.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory, device or other non-file.
    #[error("not a regular file")]
    NotRegular,
    /// Over the size limit.
    #[error("{0} bytes, over the limit of {1}")]
    TooLarge(u64, u64),
    /// Not UTF-8.
    #[error("not a text file")]
    NotText,
}

/// Why a value cannot be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The system gave no random numbers.
    #[error("no random numbers from the system: {0}")]
    NoRandom(getrandom::Error),
    /// An address slot that belongs to no connection.
    #[error("not a connection's slot")]
    NotConnection,
    /// The VPN has no address pool.
    #[error("cannot generate: VPN {0:?} declares no wireguard.address_pool")]
    NoPool(String),
    /// Every address of the pool is taken.
    #[error("the address pool {0}/{1} is exhausted")]
    Exhausted(Ipv4Addr, u8),
    /// A kind homestick does not make (extensions, user names, certificates, keys).
    #[error("homestick cannot generate {0}: put the value in the roster")]
    Cannot(SlotName),
}
