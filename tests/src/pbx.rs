//! Test helpers for the pbx area (filled in by that area's tests).
