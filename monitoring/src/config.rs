//! The daemon's configuration, read from the UCI package `besip_monitoring`
//! with the types generated from YANG besip-monitoring
//! (`besip_core::model::monitoring`): absent options take their YANG
//! defaults, values are checked against the YANG types and ranges there.

use std::collections::HashMap;
use std::path::Path;

use besip_core::model::monitoring::{Emodel, Monitoring};
use besip_core::model::ModelError;
use besip_core::uci::{Package, UciError};
use snafu::{ResultExt, Snafu};

use crate::analyzer::Settings;
use crate::codec::{Codec, CodecTable};
use crate::emodel::Variant;

#[derive(Debug, Snafu)]
pub enum ConfigError {
    #[snafu(display("{source}"))]
    Uci { source: UciError },
    #[snafu(display("{source}"))]
    Value { source: ModelError },
    #[snafu(display("{file}: option {option} '{value}' is invalid: {why}"))]
    Invalid {
        file: String,
        option: String,
        value: String,
        why: String,
    },
}

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub interfaces: Vec<String>,
    pub capture_filter: String,
    pub rotation_interval_s: u64,
    pub mos_threshold: f64,
    pub retention_days: u64,
    pub settings: Settings,
    /// /monitoring/hep: the collector and capture id, when configured.
    pub hep: Option<(std::net::SocketAddr, u32)>,
}

impl MonitorConfig {
    pub fn load(path: &Path) -> Result<MonitorConfig, ConfigError> {
        let pkg = Package::load(path).context(UciSnafu)?;
        let monitoring = Monitoring::from_package(&pkg).context(ValueSnafu)?;
        MonitorConfig::from_model(monitoring, &path.display().to_string())
    }

    pub fn from_model(m: Monitoring, file: &str) -> Result<MonitorConfig, ConfigError> {
        // A report interval longer than the file rotation would never end inside one file.
        if m.mos_interval > m.rotation_interval {
            return Err(InvalidSnafu {
                file,
                option: Monitoring::OPTION_MOS_INTERVAL,
                value: m.mos_interval.to_string(),
                why: "at most rotation_interval",
            }
            .build());
        }
        let variant = match m.emodel {
            Emodel::ItuG107 => Variant::ItuG107,
            Emodel::BesipSimplified => Variant::BesipSimplified,
        };
        let codecs: HashMap<u8, Codec> = m
            .codec
            .into_iter()
            .map(|c| {
                (
                    c.payload_type,
                    Codec {
                        name: c.name,
                        clock_rate: c.clock_rate,
                        ie: c.ie.as_f64(),
                        bpl: c.bpl.as_f64(),
                    },
                )
            })
            .collect();
        Ok(MonitorConfig {
            interfaces: m.interface,
            capture_filter: m.capture_filter,
            rotation_interval_s: u64::from(m.rotation_interval),
            mos_threshold: m.mos_threshold.as_f64(),
            retention_days: u64::from(m.retention),
            hep: m.hep.collector_address.map(|ip| {
                (
                    std::net::SocketAddr::new(ip, m.hep.collector_port),
                    m.hep.capture_id,
                )
            }),
            settings: Settings {
                variant,
                interval_s: f64::from(m.mos_interval),
                default_delay_ms: f64::from(m.default_one_way_delay),
                sip_ports: m.sip_port,
                codecs: CodecTable::with(codecs),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<MonitorConfig, ConfigError> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("besip-mon-cfg-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("besip_monitoring");
        std::fs::write(&path, text).unwrap();
        let r = MonitorConfig::load(&path);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn rendered_package_with_codecs() {
        let c = load(
            "package besip_monitoring\n\nconfig monitoring 'main'\n\tlist interface 'lo'\n\tlist interface 'eth0'\n\toption capture_filter 'udp'\n\tlist sip_port '5060'\n\tlist sip_port '5080'\n\toption rotation_interval '900'\n\toption mos_interval '10'\n\toption emodel 'besip-simplified'\n\toption default_one_way_delay '40'\n\toption mos_threshold '3.60'\n\toption retention '30'\n\nconfig codec 'codec_8'\n\toption payload_type '8'\n\toption name 'PCMA'\n\toption clock_rate '8000'\n\toption ie '0.0'\n\toption bpl '4.3'\n",
        )
        .unwrap();
        assert_eq!(c.interfaces, ["lo", "eth0"]);
        assert_eq!(c.settings.sip_ports, [5060, 5080]);
        assert_eq!(c.settings.variant, Variant::BesipSimplified);
        assert_eq!(c.settings.default_delay_ms, 40.0);
        assert_eq!(c.settings.codecs.lookup(8, None).bpl, 4.3);
        assert_eq!(c.settings.codecs.lookup(0, None).bpl, 25.1);
    }

    #[test]
    fn absent_options_take_the_yang_defaults() {
        let c = load("package besip_monitoring\n\nconfig monitoring 'main'\n").unwrap();
        assert_eq!(c.interfaces, ["any"]);
        assert_eq!(c.capture_filter, "udp");
        assert_eq!(c.rotation_interval_s, 900);
        assert_eq!(c.settings.interval_s, 10.0);
        assert_eq!(c.mos_threshold, 3.6);
        assert_eq!(c.retention_days, 30);
    }

    #[test]
    fn bad_values_name_the_option() {
        for (bad, option) in [
            ("\toption emodel 'fancy'\n", "emodel"),
            ("\toption mos_interval '0'\n", "mos_interval"),
            (
                "\toption rotation_interval '60'\n\toption mos_interval '120'\n",
                "mos_interval",
            ),
            ("\toption mos_threshold '7'\n", "mos_threshold"),
            ("\tlist sip_port 'sip'\n", "sip_port"),
            ("\toption retention 'forever'\n", "retention"),
        ] {
            let err = load(&format!(
                "package besip_monitoring\n\nconfig monitoring 'main'\n{bad}"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(option), "{bad}: {err}");
        }
    }
}
