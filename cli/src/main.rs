//! `besip`: the command line of the box. Subcommands: `up` (the whole box on
//! loopback), `export`/`import` (the whole configuration as one file); with
//! no subcommand, the configuration shell (interactive, `-c`, or a script).

mod remote;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "besip", about = "BESIP telephony appliance", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    /// Without a subcommand: the configuration shell (interactive, `-c`, or a script on stdin).
    #[command(flatten)]
    remote: remote::RemoteArgs,
}

#[derive(Subcommand)]
enum Commands {
    /// Start besip-netconfd and every daemon on loopback; Ctrl-C stops them.
    Up(up::UpArgs),
    /// Write the whole running configuration of the box to FILE.
    Export(remote::ExportArgs),
    /// Check FILE, show what changes, and commit it as the whole configuration.
    Import(remote::ImportArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Commands::Up(args)) => up::run(args),
        Some(Commands::Export(args)) => std::process::exit(remote::export(&cli.remote, args)),
        Some(Commands::Import(args)) => std::process::exit(remote::import(&cli.remote, args)),
        None => std::process::exit(remote::shell(&cli.remote)),
    };
    if let Err(message) = result {
        eprintln!("besip: {message}");
        std::process::exit(1);
    }
}
