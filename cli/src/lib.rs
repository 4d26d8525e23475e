//! besip-cli: one command language for the whole box, derived from the YANG
//! models (`shell`), the same over SSH into the box and from a laptop.

pub mod shell;
pub mod transfer;
