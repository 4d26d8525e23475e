//! Test helpers for the monitoring area (filled in by that area's tests).
