//! (crate skeleton)
