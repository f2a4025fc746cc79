//! What can go wrong in a build, by kind: the CLI's exit code follows from [`BuildError::kind`],
//! and every variant keeps the error it came from.

use std::io;
use std::path::{Path, PathBuf};

use homestick_image::files::ReadError;
use homestick_image::verify::VerifyError;

use homestick_signing::authenticode::SbError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An input is unusable: names the file, field or option and the reason.
    #[error("{subject}: {reason}")]
    Input {
        /// The file (and field) or option.
        subject: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An input file cannot be read.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// The customer profile is unusable.
    #[error(transparent)]
    Profile(#[from] homestick_profile::ProfileError),
    /// A signing or trusted key is unusable.
    #[error("{option}{}{source}", if option.is_empty() { "" } else { ": " })]
    Key {
        /// The option that named it (empty for --key, whose file the error names).
        option: &'static str,
        /// Why.
        #[source]
        source: homestick_image::keys::KeyError,
    },
    /// The Secure Boot key or certificate is unusable.
    #[error(transparent)]
    SecureBootKey(SbError),
    /// The signing key (a file or a token's) cannot sign.
    #[error("--key: {0}")]
    Sign(#[from] homestick_signing::signer::SignError),
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A step that cannot fail with checked inputs did (signing the UKI, writing the GPT,
    /// serializing the policy): a bug, never the user's fault.
    #[error("{context}: {detail}")]
    Internal {
        /// The step.
        context: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The freshly built image did not verify: a bug, never the user's fault.
    #[error("self-check of the built image failed: {0}")]
    SelfCheck(#[source] VerifyError),
    /// An outside tool (mmdebstrap, mksquashfs, chroot) failed: the machine's or the
    /// package sources' problem, its own output says which.
    #[error("{tool}: {reason}")]
    Tool {
        /// The tool and what it was doing.
        tool: String,
        /// Its exit status and last lines.
        reason: String,
    },
    /// The build was cancelled (Ctrl-C); the temporary file has been removed.
    #[error("interrupted; the temporary output file was removed")]
    Interrupted,
}

/// What kind of failure a [`BuildError`] is: what the CLI's exit code follows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Unusable input or arguments (exit 2).
    Input,
    /// The machine or a step failed: a read, a write, a full disk, or a step that cannot
    /// fail with checked inputs (exit 2, the message says which).
    Environment,
    /// The built image does not verify: it is not trusted, and nothing is written (exit 1).
    Untrusted,
    /// Stopped by the user (exit 130).
    Interrupted,
}

impl BuildError {
    /// The kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Input { .. }
            | BuildError::File { .. }
            | BuildError::Profile(_)
            | BuildError::Key { .. }
            | BuildError::SecureBootKey(_)
            | BuildError::Sign(_) => ErrorKind::Input,
            BuildError::Io { .. } | BuildError::Internal { .. } | BuildError::Tool { .. } => {
                ErrorKind::Environment
            }
            BuildError::SelfCheck(_) => ErrorKind::Untrusted,
            BuildError::Interrupted => ErrorKind::Interrupted,
        }
    }
}

/// An unusable input: `subject` names the file, field or option.
pub(crate) fn input(subject: impl Into<String>, reason: impl Into<String>) -> BuildError {
    BuildError::Input {
        subject: subject.into(),
        reason: reason.into(),
    }
}

/// An unusable input file.
pub(crate) fn input_file(path: &Path, reason: impl Into<String>) -> BuildError {
    input(path.display().to_string(), reason)
}

/// A closure for `map_err` on I/O: "`context`: error".
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// A closure for `map_err` on a bounded read of `path`.
pub(crate) fn read_err(path: &Path) -> impl FnOnce(ReadError) -> BuildError + '_ {
    move |source| BuildError::File {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let cases: Vec<(BuildError, ErrorKind, &str)> = vec![
            (
                input("--size", "too small"),
                ErrorKind::Input,
                "--size: too small",
            ),
            (
                BuildError::File {
                    path: "/b/kernel".into(),
                    source: ReadError::NotAFile,
                },
                ErrorKind::Input,
                "/b/kernel: not a regular file",
            ),
            (
                io_err("writing the ESP")(io::Error::other("disk full")),
                ErrorKind::Environment,
                "writing the ESP: disk full",
            ),
            (
                BuildError::Internal {
                    context: "signing the UKI",
                    detail: "x".into(),
                },
                ErrorKind::Environment,
                "signing the UKI: x",
            ),
            (
                BuildError::Interrupted,
                ErrorKind::Interrupted,
                "interrupted; the temporary output file was removed",
            ),
        ];
        for (e, kind, msg) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.to_string(), msg);
        }
        let e = io_err("x")(io::Error::other("y"));
        assert!(
            std::error::Error::source(&e).is_some(),
            "the source is kept"
        );
    }
}
