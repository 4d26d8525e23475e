//! `besip-uci-import` as a program of its own (development builds); the
//! router packages have it as a link to besip-box.

#[path = "../uci_import.rs"]
mod uci_import;

fn main() -> std::process::ExitCode {
    uci_import::run()
}
