//! `besip`: the command line of the box. Subcommands: `up` (the whole box on
//! loopback); the configuration shell and export/import come next.

mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "besip", about = "BESIP telephony appliance", version)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Start besip-netconfd and every daemon on loopback; Ctrl-C stops them.
    Up(up::UpArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Up(args) => up::run(args),
    };
    if let Err(message) = result {
        eprintln!("besip: {message}");
        std::process::exit(1);
    }
}
