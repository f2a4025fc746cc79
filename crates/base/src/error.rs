//! What can go wrong in a base build, by kind: the recipe or an option (the user's to fix), a
//! tool that failed, or a file of the root or the staged base that could not be read or
//! written (this machine's). Every variant keeps the error it came from.

use std::io;
use std::path::{Path, PathBuf};

use homestick_image::files::ReadError;

/// Why a base could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaseError {
    /// The recipe, an option or an input file is wrong.
    #[error("{subject}: {reason}")]
    Input {
        /// The file and field, or the option.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// The recipe cannot be read.
    #[error("{}: {source}", path.display())]
    Recipe {
        /// The recipe.
        path: PathBuf,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// A tool failed (mmdebstrap, chroot, systemctl, mksquashfs, dpkg-query).
    #[error("{tool}: {reason}")]
    Tool {
        /// The tool and what it was asked.
        tool: String,
        /// Its exit status and the end of what it said.
        reason: String,
    },
    /// A file of the built root or the staged base could not be read or written.
    #[error("{}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Whose a failure is: the exit code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The recipe or the options: exit 2.
    Input,
    /// This machine (a tool, the disk): exit 2 as well, with the tool or file named.
    Environment,
}

impl BaseError {
    /// The kind, for the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BaseError::Input { .. } | BaseError::Recipe { .. } => ErrorKind::Input,
            BaseError::Tool { .. } | BaseError::Output { .. } => ErrorKind::Environment,
        }
    }
}

/// An input error about `subject`.
pub(crate) fn input(subject: impl Into<String>, reason: impl Into<String>) -> BaseError {
    BaseError::Input {
        subject: subject.into(),
        reason: reason.into(),
    }
}

/// An input error about the file `path`.
pub(crate) fn input_file(path: &Path, reason: impl Into<String>) -> BaseError {
    input(path.display().to_string(), reason)
}

/// A closure for `map_err`: reading or writing `path` of the root or the staged base failed.
pub(crate) fn output(path: &Path) -> impl FnOnce(io::Error) -> BaseError + '_ {
    move |source| BaseError::Output {
        path: path.to_path_buf(),
        source,
    }
}

/// A tool's failure.
pub(crate) fn tool(what: &str, e: impl std::fmt::Display) -> BaseError {
    BaseError::Tool {
        tool: what.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_and_its_message() {
        let cases = [
            (
                input("base.toml: suite", "\"x y\" is no suite"),
                ErrorKind::Input,
                "base.toml: suite: \"x y\" is no suite",
            ),
            (
                tool("mksquashfs", "failed (exit status: 1)"),
                ErrorKind::Environment,
                "mksquashfs: failed (exit status: 1)",
            ),
            (
                output(Path::new("/tmp/b/base.toml"))(io::Error::other("disk full")),
                ErrorKind::Environment,
                "/tmp/b/base.toml: disk full",
            ),
        ];
        for (e, kind, text) in cases {
            println!("case {text}");
            assert_eq!((e.kind(), e.to_string()), (kind, text.to_string()));
        }
    }
}
