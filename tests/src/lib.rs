//! Harness for the cross-process tests in `tests/tests/`: locating the built
//! binaries, temporary `--root` trees, and per-area helpers.

pub mod baresip;
pub mod cli;
pub mod dns;
pub mod harness;
pub mod monitoring;
pub mod netconf;
pub mod pbx;
pub mod postgres;
pub mod rtp_tap;
pub mod security;
pub mod up;
pub mod web;
