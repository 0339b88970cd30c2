//! The `authwatch` binary: parses the command line, sets up logging, runs the command and
//! maps the outcome to SPEC §4 exit codes (clap itself exits 2 on usage errors).

use std::process::ExitCode;

use clap::Parser;

use authwatch::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    authwatch::telemetry::init();
    authwatch::app::execute(cli.command)
}
