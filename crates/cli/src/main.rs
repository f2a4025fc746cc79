//! The `homestick` binary: parses arguments and dispatches; the work lives in the libraries.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = homestick::cli::Cli::parse();
    homestick::run(cli)
}
