//! IP prefixes of the configuration (NAT local networks, outbound peers):
//! parsed with the configuration, matched here.

use std::net::IpAddr;

pub use crate::config::parse_networks;

/// True when `ip` is inside the prefix `net`.
pub fn contains(net: &(IpAddr, u8), ip: IpAddr) -> bool {
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(net.1)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(net.1)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}
