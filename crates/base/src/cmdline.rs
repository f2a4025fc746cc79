//! The kernel command line locked into the UKI: no way around the boot verifier, lockdown on,
//! root read-only.

/// Kernel command-line parameters that would hand out a shell or skip the verifier.
const FORBIDDEN: &[&str] = &[
    "init",
    "rdinit",
    "rd.shell",
    "rd.break",
    "rd.emergency",
    "systemd.debug_shell",
    "single",
    "emergency",
    "s",
    "S",
    "-s",
    "1",
    "break",
    "systemd.unit",
    // Partition tables from the command line come before the GPT in the kernel's scan.
    "blkdevparts",
];

/// What is wrong with a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdlineError {
    /// A parameter that could bypass the verifier or open a shell.
    #[error("forbidden parameter {0:?}: it could bypass the boot verifier or open a shell")]
    Forbidden(String),
    /// `rw`.
    #[error("\"rw\": the root file system must be read-only (use \"ro\")")]
    ReadWrite,
    /// A `lockdown=` value other than integrity or confidentiality.
    #[error("{0:?}: use lockdown=integrity or lockdown=confidentiality")]
    WeakLockdown(String),
    /// No `lockdown=`.
    #[error("lockdown=integrity (or lockdown=confidentiality) is required")]
    NoLockdown,
    /// No `ro`.
    #[error("\"ro\" is required: the root file system must be read-only")]
    NoReadOnly,
}

/// Normalize whitespace: the command line as it goes into the UKI.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Check a kernel command line.
pub fn lint(cmdline: &str) -> Result<(), CmdlineError> {
    let mut lockdown = false;
    let mut ro = false;
    for tok in cmdline.split_whitespace() {
        let key = tok.split_once('=').map_or(tok, |(k, _)| k);
        if FORBIDDEN.contains(&key) {
            return Err(CmdlineError::Forbidden(tok.into()));
        }
        match tok {
            "lockdown=integrity" | "lockdown=confidentiality" => lockdown = true,
            "ro" => ro = true,
            "rw" => return Err(CmdlineError::ReadWrite),
            _ if key == "lockdown" => return Err(CmdlineError::WeakLockdown(tok.into())),
            _ => {}
        }
    }
    if !lockdown {
        return Err(CmdlineError::NoLockdown);
    }
    if !ro {
        return Err(CmdlineError::NoReadOnly);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "console=ttyS0 lockdown=integrity ro panic=-1";

    #[test]
    fn the_good_line_passes() {
        assert_eq!(lint(GOOD), Ok(()));
        assert_eq!(lint("ro lockdown=confidentiality"), Ok(()));
        assert_eq!(normalize("  a\tb \n c "), "a b c");
    }

    #[test]
    fn each_bad_line_gets_its_own_reason() {
        let cases: &[(&str, CmdlineError)] = &[
            (
                "init=/bin/sh",
                CmdlineError::Forbidden("init=/bin/sh".into()),
            ),
            (
                "rdinit=/bin/sh",
                CmdlineError::Forbidden("rdinit=/bin/sh".into()),
            ),
            ("rd.shell", CmdlineError::Forbidden("rd.shell".into())),
            (
                "rd.break=pre-mount",
                CmdlineError::Forbidden("rd.break=pre-mount".into()),
            ),
            (
                "rd.emergency",
                CmdlineError::Forbidden("rd.emergency".into()),
            ),
            (
                "systemd.debug_shell=1",
                CmdlineError::Forbidden("systemd.debug_shell=1".into()),
            ),
            ("single", CmdlineError::Forbidden("single".into())),
            ("emergency", CmdlineError::Forbidden("emergency".into())),
            ("S", CmdlineError::Forbidden("S".into())),
            ("-s", CmdlineError::Forbidden("-s".into())),
            ("1", CmdlineError::Forbidden("1".into())),
            ("break", CmdlineError::Forbidden("break".into())),
            (
                "systemd.unit=rescue.target",
                CmdlineError::Forbidden("systemd.unit=rescue.target".into()),
            ),
            (
                "blkdevparts=vda:1M(x)",
                CmdlineError::Forbidden("blkdevparts=vda:1M(x)".into()),
            ),
            ("rw", CmdlineError::ReadWrite),
            (
                "lockdown=none",
                CmdlineError::WeakLockdown("lockdown=none".into()),
            ),
        ];
        let mut failed = Vec::new();
        for (param, want) in cases {
            let got = lint(&format!("{GOOD} {param}"));
            if got.as_ref() != Err(want) {
                failed.push(format!("{param}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
        assert_eq!(lint("ro"), Err(CmdlineError::NoLockdown));
        assert_eq!(lint("lockdown=integrity"), Err(CmdlineError::NoReadOnly));
        // Only whole keys count: a parameter that merely starts like a forbidden one passes.
        assert_eq!(lint(&format!("{GOOD} initcall_debug singlestep")), Ok(()));
    }
}
