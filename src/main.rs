//! The `cells-mount` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cells-mount", version, about = "Mount a Pydio Cells workspace as a local folder")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Cells content hash of files, like md5sum (`HASH  FILE`).
    Hash {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Hash { files } => {
            let mut status = ExitCode::SUCCESS;
            for f in files {
                match cells_mount::hash::cells_hash_file(&f) {
                    Ok(h) => println!("{h}  {}", f.display()),
                    Err(e) => {
                        eprintln!("cells-mount: {}: {e}", f.display());
                        status = ExitCode::FAILURE;
                    }
                }
            }
            status
        }
    }
}
