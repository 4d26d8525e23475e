//! besip-cli: the `besip` command line, a client of the box. The command
//! language itself is besip-shell (re-exported as `shell` so the program's
//! main file also compiles unchanged inside besip-box); here are the SSH
//! client (`client`), its known host keys (`known_hosts`) and the
//! whole-configuration export/import (`transfer`).

pub use besip_shell as shell;

pub mod client;
pub mod known_hosts;
pub mod transfer;
