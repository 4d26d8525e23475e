//! Test helpers for the netconf area (filled in by that area's tests).
