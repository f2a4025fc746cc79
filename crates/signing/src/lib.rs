//! Keys and signatures, apart from what is signed: making keys ([`keygen`]), keys on a
//! PKCS#11 token ([`pkcs11`]), the image signer over a file key or a token ([`signer`]),
//! Secure Boot's Authenticode signatures ([`authenticode`]) over PE files ([`pe`]), and the
//! unified kernel image ([`uki`]).

#![forbid(unsafe_code)]

pub mod authenticode;
pub mod keygen;
pub mod pe;
pub mod pkcs11;
pub mod signer;
pub mod uki;
