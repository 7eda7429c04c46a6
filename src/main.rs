//! The `callfeed` binary: parses the command line and hands it to [`callfeed::cli`].

use std::process::ExitCode;

use clap::Parser;

use callfeed::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::exit_code(cli::run(cli).await)
}
