//! The `cells-mount` executable: everything is in the `cli` module.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
