//! homestick's on-disk format: GPT layout, FAT volumes, the signed manifest, keys and the
//! verifier that both `homestick verify` and the boot-time verifier use.
//!
//! Pure core: everything works on [`disk::Disk`] (random-access reads) and byte buffers; files
//! and devices come in at the edges.

#![forbid(unsafe_code)]

pub mod bytes;
pub mod csv;
pub mod disk;
pub mod fat;
pub mod files;
pub mod gpt;
pub mod hash;
pub mod keys;
pub mod manifest;
pub mod pe;
pub mod policy;
pub mod revocation;
pub mod set;
pub mod shim;
pub mod time;
pub mod verify;
pub mod verity;
