//! IP prefixes of the configuration (NAT local networks, outbound peers).

use std::net::IpAddr;

/// Parses /pbx/nat/local-network prefixes ("192.168.0.0/16", "fd00::/8").
pub fn parse_networks(values: &[String]) -> Result<Vec<(IpAddr, u8)>, String> {
    values
        .iter()
        .map(|v| {
            let bad = || format!("nat local-network '{v}' is not an IP prefix");
            let (ip, len) = v.split_once('/').ok_or_else(bad)?;
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(bad());
            }
            Ok((ip, len))
        })
        .collect()
}

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
