//! Addresses of this box (never banned). Live capture itself is besip_core::capture.

/// The box's own addresses (never banned).
pub fn own_addresses() -> Vec<std::net::IpAddr> {
    pcap::Device::list()
        .map(|devs| {
            devs.iter()
                .flat_map(|d| d.addresses.iter().map(|a| a.addr))
                .collect()
        })
        .unwrap_or_default()
}
