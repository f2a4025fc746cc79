//! One builder for `homestick build` argument lists: the tests say what differs (a roster, a
//! boot verifier, Secure Boot signing, one more flag), not the whole list each time.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::run::{hs, Run};

/// `homestick build` arguments, in the order given.
#[derive(Debug, Clone)]
pub struct Build(Vec<OsString>);

impl Build {
    /// `build --profile P --base B --key <test key> --output O`.
    pub fn new(profile: &Path, base: &Path, output: &Path) -> Build {
        Build::bare()
            .opt("--profile", profile)
            .opt("--base", base)
            .opt("--key", crate::test_key())
            .opt("--output", output)
    }

    /// `build` alone: for tests of what a missing or wrong argument gives.
    pub fn bare() -> Build {
        Build(vec!["build".into()])
    }

    /// `NAME VALUE`.
    pub fn opt(mut self, name: &str, value: impl AsRef<OsStr>) -> Build {
        self.0.push(name.into());
        self.0.push(value.as_ref().to_owned());
        self
    }

    /// One more argument (a flag, or a value after [`Build::arg`]'s flag).
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Build {
        self.0.push(a.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, more: I) -> Build {
        self.0
            .extend(more.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The static boot verifier ([`crate::env::boot_verifier`]) and a 1-second refusal delay.
    pub fn bootable(self) -> Build {
        self.opt("--boot-verifier", crate::env::boot_verifier())
            .opt("--failure-delay", "1")
    }

    /// The UKI signed with OVMF's snakeoil db key: a 0600 copy of the key and its passphrase
    /// file are written to `dir`.
    pub fn snakeoil_secure_boot(self, dir: &Path) -> Build {
        let key = crate::private_copy(Path::new(crate::SB_KEY), dir);
        let pw = dir.join("snakeoil.pw");
        std::fs::write(&pw, "snakeoil\n")
            .unwrap_or_else(|e| panic!("writing {}: {e}", pw.display()));
        self.opt("--secure-boot-key", key)
            .opt("--secure-boot-cert", crate::SB_CERT)
            .opt("--secure-boot-passphrase-file", pw)
    }

    /// The arguments.
    pub fn to_vec(&self) -> Vec<OsString> {
        self.0.clone()
    }

    /// Run `homestick` with them (at [`crate::EPOCH`]).
    pub fn run(&self) -> Run {
        hs(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_come_in_the_order_given() {
        let b = Build::new(Path::new("p"), Path::new("b"), Path::new("o"))
            .opt("--roster", "r.csv")
            .arg("--no-cache");
        let v: Vec<String> = b
            .to_vec()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(v[..3], ["build", "--profile", "p"]);
        assert_eq!(v[3..5], ["--base", "b"]);
        assert_eq!(v[5], "--key");
        assert_eq!(v[7..], ["--output", "o", "--roster", "r.csv", "--no-cache"]);
    }
}
