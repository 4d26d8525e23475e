//! RFC 3263 §4 on hickory-resolver: a SIP host name to the ordered list of
//! (transport, address, port) targets to try, with how long the answer
//! holds (the smallest TTL of the records used).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Name, ResolveError, TokioResolver};
use snafu::{ResultExt, Snafu};

use super::srv_order::{self, SrvRecord};
use crate::config::dns::{Lookup, Settings};
use crate::config::Transport;

/// Targets kept per name: a huge SRV answer set costs no more than this
/// (and as many address lookups).
pub const MAX_TARGETS: usize = 16;
/// NAPTR records looked at per name.
const MAX_NAPTR: usize = 8;
/// An answer is not asked again sooner (a TTL of 0 would spin) nor kept longer.
const MIN_HOLD: Duration = Duration::from_secs(1);
const MAX_HOLD: Duration = Duration::from_secs(3600);

#[derive(Debug, Snafu)]
pub enum DnsError {
    #[snafu(display("'{name}' is not a valid domain name"))]
    BadName {
        name: String,
        source: hickory_resolver::proto::ProtoError,
    },
    #[snafu(display("cannot read /etc/resolv.conf: {source} (set /pbx/dns/server)"))]
    SystemConfig { source: ResolveError },
    #[snafu(display("{what} {name}: {}", describe(source)))]
    Query {
        what: &'static str,
        name: String,
        source: ResolveError,
    },
    #[snafu(display("{name}: no SRV or address records"))]
    NoTargets { name: String },
}

fn describe(e: &ResolveError) -> String {
    if e.is_nx_domain() {
        "no such domain name".into()
    } else if e.is_no_records_found() {
        "no records".into()
    } else {
        e.to_string()
    }
}

/// One place to send requests to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// A resolved name: the targets in the order to try them, and until when.
#[derive(Debug, Clone)]
pub struct Answer {
    pub targets: Vec<Target>,
    pub valid_until: Instant,
}

pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// A resolver asking /pbx/dns/server (or the system's servers).
    pub fn new(settings: &Settings) -> Result<Resolver, DnsError> {
        let mut builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio().context(SystemConfigSnafu)?
        } else {
            let servers = NameServerConfigGroup::from_ips_clear(
                &settings.servers,
                settings.server_port,
                true,
            );
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioConnectionProvider::default(),
            )
        };
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        opts.attempts = 2;
        // Its own cache honours the TTLs; ours (`Names`) holds the outcome.
        opts.cache_size = 256;
        opts.ndots = 0;
        *builder.options_mut() = opts;
        Ok(Resolver {
            inner: builder.build(),
        })
    }

    /// RFC 3263 §4.1/§4.2: port given → A/AAAA; transport given → SRV of
    /// it; neither → NAPTR, else SRV of UDP then TCP; then A/AAAA on the
    /// transport's default port (5060, 5061 for TLS).
    pub async fn resolve(&self, lookup: &Lookup) -> Result<Answer, DnsError> {
        let name = fqdn(&lookup.name)?;
        let mut until = Instant::now() + MAX_HOLD;
        if let Some(port) = lookup.port {
            let transport = lookup.transport.unwrap_or(Transport::Udp);
            return self.addresses(&name, port, transport, &mut until).await;
        }
        let services: Vec<(Name, Transport)> = match lookup.transport {
            Some(t) => vec![(srv_name(&name, t)?, t)],
            None => match self.naptr(&name, &mut until).await? {
                found if !found.is_empty() => found,
                _ => vec![
                    (srv_name(&name, Transport::Udp)?, Transport::Udp),
                    (srv_name(&name, Transport::Tcp)?, Transport::Tcp),
                ],
            },
        };
        for (service, transport) in services {
            let answer = self.srv(&service, transport, &mut until).await?;
            if !answer.targets.is_empty() {
                return Ok(answer);
            }
        }
        let transport = lookup.transport.unwrap_or(Transport::Udp);
        self.addresses(&name, transport.default_port(), transport, &mut until)
            .await
    }

    /// NAPTR records of SIP over UDP/TCP/TLS ("s" flag), in order/preference:
    /// the SRV names to ask. None at all is no error (§4.1: go on to SRV).
    async fn naptr(
        &self,
        name: &Name,
        until: &mut Instant,
    ) -> Result<Vec<(Name, Transport)>, DnsError> {
        let lookup = match self.inner.lookup(name.clone(), RecordType::NAPTR).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(vec![]),
            Err(source) => {
                return Err(DnsError::Query {
                    what: "NAPTR",
                    name: name.to_string(),
                    source,
                })
            }
        };
        *until = (*until).min(lookup.valid_until());
        let mut found: Vec<(u16, u16, Name, Transport)> = lookup
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) if n.flags().eq_ignore_ascii_case(b"s") => {
                    let transport = match n.services().to_ascii_uppercase().as_slice() {
                        b"SIP+D2U" => Transport::Udp,
                        b"SIP+D2T" => Transport::Tcp,
                        b"SIPS+D2T" => Transport::Tls,
                        _ => return None,
                    };
                    Some((
                        n.order(),
                        n.preference(),
                        n.replacement().clone(),
                        transport,
                    ))
                }
                _ => None,
            })
            .collect();
        found.sort_by_key(|f| (f.0, f.1));
        found.truncate(MAX_NAPTR);
        Ok(found.into_iter().map(|f| (f.2, f.3)).collect())
    }

    /// SRV of `service`, ordered by RFC 2782, each target's addresses.
    /// No records is an empty answer (the caller goes on).
    async fn srv(
        &self,
        service: &Name,
        transport: Transport,
        until: &mut Instant,
    ) -> Result<Answer, DnsError> {
        let lookup = match self.inner.srv_lookup(service.clone()).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                return Ok(Answer {
                    targets: vec![],
                    valid_until: *until,
                })
            }
            Err(source) => {
                return Err(DnsError::Query {
                    what: "SRV",
                    name: service.to_string(),
                    source,
                })
            }
        };
        *until = (*until).min(lookup.as_lookup().valid_until());
        let mut records: Vec<SrvRecord> = lookup
            .iter()
            // RFC 2782: a lone "." target says the service is not offered.
            .filter(|s| !s.target().is_root())
            .map(|s| SrvRecord {
                priority: s.priority(),
                weight: s.weight(),
                port: s.port(),
                target: s.target().to_ascii(),
            })
            .collect();
        // A huge answer set (at most a 64 KiB message) is cut to its best
        // priorities before the weighted shuffle.
        records.sort_by_key(|r| r.priority);
        records.truncate(MAX_TARGETS * 4);
        let ordered = srv_order::order(records, |n| rand::random::<u32>() % n.max(1));
        let mut targets = Vec::new();
        let mut last_error = None;
        for r in ordered {
            if targets.len() >= MAX_TARGETS {
                break;
            }
            let Ok(name) = Name::from_ascii(&r.target) else {
                continue;
            };
            // A target without addresses is skipped, not fatal (§4.4).
            match self.addresses(&name, r.port, transport, until).await {
                Ok(a) => targets.extend(a.targets),
                Err(e) => last_error = Some(e),
            }
        }
        targets.truncate(MAX_TARGETS);
        match (targets.is_empty(), last_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(Answer {
                targets,
                valid_until: *until,
            }),
        }
    }

    /// A and AAAA records of `name` on `port`.
    async fn addresses(
        &self,
        name: &Name,
        port: u16,
        transport: Transport,
        until: &mut Instant,
    ) -> Result<Answer, DnsError> {
        let lookup = self
            .inner
            .lookup_ip(name.clone())
            .await
            .context(QuerySnafu {
                what: "A/AAAA",
                name: name.to_string(),
            })?;
        *until = (*until).min(lookup.valid_until());
        let targets: Vec<Target> = lookup
            .iter()
            .take(MAX_TARGETS)
            .map(|ip: IpAddr| Target {
                transport,
                addr: SocketAddr::new(ip, port),
            })
            .collect();
        if targets.is_empty() {
            return NoTargetsSnafu {
                name: name.to_string(),
            }
            .fail();
        }
        Ok(Answer {
            targets,
            valid_until: *until,
        })
    }
}

/// How long an answer valid until `until` is kept (bounded both ways).
pub fn hold_for(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .clamp(MIN_HOLD, MAX_HOLD)
}

fn fqdn(name: &str) -> Result<Name, DnsError> {
    let mut n = Name::from_ascii(name).context(BadNameSnafu { name })?;
    n.set_fqdn(true);
    Ok(n)
}

/// `_sip._udp.<name>` / `_sip._tcp.<name>` / `_sips._tcp.<name>`.
fn srv_name(name: &Name, transport: Transport) -> Result<Name, DnsError> {
    let label = match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    };
    let text = format!("{label}.{}", name.to_ascii());
    fqdn(text.trim_end_matches('.'))
}
