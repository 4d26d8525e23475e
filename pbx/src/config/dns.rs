//! /pbx/dns and the trunk hosts that are domain names, as the PBX uses them
//! (read from the generated `besip_core::model::pbx` types; the runtime side
//! is in `features::dns`).

use std::net::IpAddr;
use std::time::Duration;

use besip_core::model::pbx::PbxDns;

use super::Transport;

/// /pbx/dns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Servers to ask instead of /etc/resolv.conf's (empty: the system's).
    pub servers: Vec<IpAddr>,
    pub server_port: u16,
    /// Per query, before asking again or the next server.
    pub timeout: Duration,
    /// A silent trunk target is given up after this long.
    pub no_answer: Duration,
}

impl Default for Settings {
    /// What an empty /pbx/dns reads as (the YANG defaults).
    fn default() -> Self {
        Settings::from_model(&PbxDns::default())
    }
}

impl Settings {
    pub fn from_model(dns: &PbxDns) -> Settings {
        Settings {
            servers: dns.server.clone(),
            server_port: dns.server_port,
            timeout: Duration::from_millis(u64::from(dns.timeout)),
            no_answer: Duration::from_millis(u64::from(dns.no_answer_timeout)),
        }
    }
}

/// What to look up for a host that is a domain name (RFC 3263 §4.1, §4.2):
/// the port and transport the configuration fixes, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lookup {
    /// Lower case, without a trailing dot.
    pub name: String,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
}

impl Lookup {
    /// `None` for an IP address literal (nothing to resolve).
    pub fn of_host(host: &str, port: Option<u16>, transport: Option<Transport>) -> Option<Lookup> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() {
            return None;
        }
        Some(Lookup {
            name: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
            transport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup() {
        assert_eq!(Lookup::of_host("192.0.2.1", None, None), None);
        assert_eq!(Lookup::of_host("[2001:db8::1]", None, None), None);
        let l = Lookup::of_host("SIP.Example.com.", Some(5070), None).expect("name");
        assert_eq!(l.name, "sip.example.com");
        assert_eq!(l.port, Some(5070));
    }

    #[test]
    fn trunk_by_name_keeps_what_the_configuration_fixes() {
        let text = "package besip_pbx\n\nconfig pbx 'main'\n\tlist dns_server '192.0.2.53'\n\toption dns_server_port '5353'\n\toption dns_timeout '700'\n\nconfig trunk 'trunk_a'\n\toption name 'a'\n\toption host 'sip.example.com'\n\nconfig trunk 'trunk_b'\n\toption name 'b'\n\toption host 'sip.example.net'\n\toption transport 'tcp'\n\nconfig trunk 'trunk_c'\n\toption name 'c'\n\toption host '192.0.2.1'\n";
        let pkg = besip_core::uci::Package::parse("besip_pbx", text).expect("uci");
        let c = crate::config::Config::from_package(&pkg, "besip_pbx").expect("config");
        assert_eq!(c.dns.servers, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.dns.server_port, 5353);
        assert_eq!(c.dns.timeout, Duration::from_millis(700));
        assert_eq!(c.dns.no_answer, Duration::from_millis(3000));
        let a = c.trunks["a"].lookup.clone().expect("a name");
        assert_eq!((a.port, a.transport), (None, None));
        let b = c.trunks["b"].lookup.clone().expect("a name");
        assert_eq!((b.port, b.transport), (None, Some(Transport::Tcp)));
        assert_eq!(c.trunks["c"].lookup, None);
        assert_eq!(c.trunks["c"].port, 5060);
        assert_eq!(c.trunks["c"].transport, Transport::Udp);
    }
}
