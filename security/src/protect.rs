//! Addresses a ban must never hit (issue 13, "no lock-out"): a forged packet
//! claiming one of them as its source must not get it banned. They are the
//! box's own addresses, the whitelist, the PBX's trunks and dispatcher
//! destinations (read from the PBX's UCI package, besip_pbx) and the sources of
//! live management sessions (announced by netconfd and the web panel over IPC,
//! with a time to live they refresh while the session lasts).
//!
//! The PBX's package also says which ports a SIP-scope ban drops: its listen
//! ports and its RTP range.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use besip_core::model::pbx::{Pbx, Transport};
use besip_core::model::ModelError;
use besip_core::uci::Package;
use ipnet::IpNet;

/// Live management sessions remembered at most (the oldest to expire goes first).
const MAX_SESSIONS: usize = 4096;

/// What the security daemon reads from besip_pbx.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PbxView {
    /// Ports the PBX listens on (UDP and TCP).
    pub sip_ports: Vec<u16>,
    /// The RTP relay range (port-min, port-max).
    pub rtp: Option<(u16, u16)>,
    /// /pbx/rtp/kernel-forwarding: the relay's media leaves at netdev
    /// ingress, where bans must drop too.
    pub kernel_forwarding: bool,
    /// Trunk hosts and dispatcher destinations given as IP addresses (names
    /// are not resolved by the PBX either).
    pub peers: Vec<IpAddr>,
    /// /pbx/cluster: the database bans are shared in, and this box's name.
    pub cluster: Option<crate::shared_bans::Settings>,
}

impl PbxView {
    /// Read `path`; a missing file is an empty view (no PBX configured). A
    /// file that does not parse is an error the caller logs (the PBX refuses
    /// it too).
    pub fn load(path: &Path) -> Result<PbxView, String> {
        if !path.exists() {
            return Ok(PbxView::default());
        }
        let pkg = Package::load(path).map_err(|e| e.to_string())?;
        PbxView::from_package(&pkg).map_err(|e| e.to_string())
    }

    /// The view of a package, read with the generated besip-pbx types (YANG
    /// defaults for what the file leaves out).
    pub fn from_package(pkg: &Package) -> Result<PbxView, ModelError> {
        Ok(PbxView::from_model(&Pbx::from_package(pkg)?))
    }

    pub fn from_model(pbx: &Pbx) -> PbxView {
        let mut view = PbxView::default();
        for listen in &pbx.listen {
            // No port: the PBX binds the transport's registered one.
            let port = listen.port.unwrap_or(match listen.transport {
                Transport::Tls => 5061,
                Transport::Udp | Transport::Tcp => 5060,
            });
            if !view.sip_ports.contains(&port) {
                view.sip_ports.push(port);
            }
        }
        if pbx.listen.is_empty() {
            view.sip_ports.push(5060); // the PBX's own fallback listen socket
        }
        if pbx.rtp.port_min < pbx.rtp.port_max {
            view.rtp = Some((pbx.rtp.port_min, pbx.rtp.port_max));
        }
        view.kernel_forwarding = pbx.rtp.kernel_forwarding;
        for trunk in &pbx.trunk {
            if let Some(ip) = parse_host(&trunk.host) {
                view.peers.push(ip);
            }
        }
        for set in &pbx.dispatcher_set {
            for d in &set.destination {
                if let Some(ip) = uri_host(&d.uri).and_then(parse_host) {
                    view.peers.push(ip);
                }
            }
        }
        view.peers.sort();
        view.peers.dedup();
        view.cluster = pbx
            .cluster
            .database
            .as_ref()
            .map(|db| crate::shared_bans::Settings {
                database: db.clone(),
                database_ca: pbx.cluster.database_ca.clone(),
                box_name: pbx.cluster.box_name.clone(),
            });
        view
    }
}

fn parse_host(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The host part of `sip:user@host:port;params` (IPv6 in brackets).
fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(hostport.split(':').next().unwrap_or(hostport))
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        a => a,
    }
}

/// The addresses that are never banned, except the whitelist (part of the
/// security configuration, passed in by the caller).
#[derive(Debug, Default)]
pub struct Guard {
    own: Vec<IpAddr>,
    peers: Vec<IpAddr>,
    /// Session source -> end of protection (the daemon's monotonic ms clock).
    sessions: HashMap<IpAddr, u64>,
}

impl Guard {
    pub fn new(own: Vec<IpAddr>) -> Guard {
        Guard {
            own: own.into_iter().map(canonical).collect(),
            ..Guard::default()
        }
    }

    pub fn set_own(&mut self, own: Vec<IpAddr>) {
        self.own = own.into_iter().map(canonical).collect();
    }

    pub fn set_peers(&mut self, peers: Vec<IpAddr>) {
        self.peers = peers.into_iter().map(canonical).collect();
    }

    /// Protect a session's source until `until_ms`; a later call extends or
    /// shortens it (the session's refresh).
    pub fn protect_session(&mut self, addr: IpAddr, until_ms: u64) {
        let addr = canonical(addr);
        if self.sessions.len() >= MAX_SESSIONS && !self.sessions.contains_key(&addr) {
            if let Some(first) = self
                .sessions
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(a, _)| *a)
            {
                self.sessions.remove(&first);
            }
        }
        self.sessions.insert(addr, until_ms);
    }

    pub fn expire_sessions(&mut self, now_ms: u64) {
        self.sessions.retain(|_, until| *until > now_ms);
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Every protected address (for checking a prefix before banning it).
    fn addresses(&self) -> impl Iterator<Item = &IpAddr> {
        self.own
            .iter()
            .chain(self.peers.iter())
            .chain(self.sessions.keys())
    }

    pub fn protects(&self, addr: IpAddr, whitelist: &[IpNet]) -> bool {
        let addr = canonical(addr);
        self.addresses().any(|a| *a == addr) || whitelist.iter().any(|n| n.contains(&addr))
    }

    /// Whether `net` holds a protected address or overlaps the whitelist.
    pub fn protects_any_in(&self, net: &IpNet, whitelist: &[IpNet]) -> bool {
        self.addresses().any(|a| net.contains(a))
            || whitelist
                .iter()
                .any(|w| w.contains(&net.network()) || net.contains(&w.network()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbx_package_gives_ports_rtp_and_peers() {
        // A rendered package (keys and parents present, as core writes them).
        let text = "package besip_pbx\n\nconfig pbx 'main'\n\toption rtp_port_min '12000'\n\toption rtp_port_max '12100'\n\nconfig listen 'listen_a'\n\toption name 'a'\n\toption port '5070'\n\nconfig listen 'listen_b'\n\toption name 'b'\n\toption port '5070'\n\toption transport 'tcp'\n\nconfig trunk 'trunk_p'\n\toption name 'p'\n\toption host '192.0.2.7'\n\nconfig trunk 'trunk_n'\n\toption name 'n'\n\toption host 'sip.example.com'\n\nconfig dispatcher_set 'dispatcher_set_s'\n\toption name 's'\n\nconfig dispatcher_set_destination 'd1'\n\toption dispatcher_set 's'\n\toption uri 'sip:gw@198.51.100.9:5080;transport=udp'\n\nconfig dispatcher_set_destination 'd2'\n\toption dispatcher_set 's'\n\toption uri 'sip:[2001:db8::9]:5060'\n\nconfig listen 'listen_c'\n\toption name 'c'\n\toption transport 'tls'\n";
        let pkg = Package::parse("besip_pbx", text).unwrap();
        let v = PbxView::from_package(&pkg).unwrap();
        assert_eq!(v.sip_ports, vec![5070, 5061], "TLS without a port is 5061");
        assert_eq!(v.rtp, Some((12000, 12100)));
        let want: Vec<IpAddr> = ["192.0.2.7", "198.51.100.9", "2001:db8::9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(v.peers, want);
        let empty = Package::parse("besip_pbx", "package besip_pbx\n").unwrap();
        assert_eq!(PbxView::from_package(&empty).unwrap().sip_ports, vec![5060]);
    }

    #[test]
    fn guard_covers_addresses_prefixes_and_sessions() {
        let mut g = Guard::new(vec!["192.0.2.1".parse().unwrap()]);
        g.set_peers(vec!["198.51.100.9".parse().unwrap()]);
        let wl: Vec<IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        assert!(g.protects("192.0.2.1".parse().unwrap(), &wl));
        assert!(g.protects("::ffff:198.51.100.9".parse().unwrap(), &wl));
        assert!(g.protects("10.1.2.3".parse().unwrap(), &wl));
        assert!(!g.protects("203.0.113.5".parse().unwrap(), &wl));
        g.protect_session("203.0.113.5".parse().unwrap(), 1000);
        assert!(g.protects("203.0.113.5".parse().unwrap(), &wl));
        assert!(g.protects_any_in(&"203.0.113.0/24".parse().unwrap(), &wl));
        assert!(g.protects_any_in(&"10.0.0.0/8".parse().unwrap(), &wl));
        assert!(!g.protects_any_in(&"203.0.114.0/24".parse().unwrap(), &wl));
        g.expire_sessions(1000);
        assert!(!g.protects("203.0.113.5".parse().unwrap(), &wl));
    }
}
