//! Test helpers for the security area (filled in by that area's tests).
