//! The daemon's configuration, read from the UCI package `besip_monitoring`
//! (rendered by core from YANG module besip-monitoring). Absent options take
//! the YANG default named in each comment.

use std::collections::HashMap;
use std::path::Path;

use besip_core::uci::{Package, Section, UciError};
use snafu::{ResultExt, Snafu};

use crate::analyzer::Settings;
use crate::codec::{Codec, CodecTable};
use crate::emodel::Variant;

#[derive(Debug, Snafu)]
pub enum ConfigError {
    #[snafu(display("{source}"))]
    Uci { source: UciError },
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
}

fn parsed<T>(sec: &Section, name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    Ok(sec
        .get_parsed::<T>(name)
        .context(UciSnafu)?
        .unwrap_or(default))
}

impl MonitorConfig {
    pub fn load(path: &Path) -> Result<MonitorConfig, ConfigError> {
        let file = path.display().to_string();
        let pkg = Package::load(path).context(UciSnafu)?;
        let empty = Section::new("monitoring", "main");
        let main = pkg.section("main").unwrap_or(&empty);
        let invalid = |option: &str, value: String, why: &str| {
            InvalidSnafu {
                file: file.clone(),
                option,
                value,
                why,
            }
            .build()
        };
        // leaf-list interface, default "any"
        let mut interfaces = main.list("interface").to_vec();
        if interfaces.is_empty() {
            interfaces.push("any".to_string());
        }
        // leaf capture-filter, default "udp"
        let capture_filter = main.get("capture_filter").unwrap_or("udp").to_string();
        // leaf-list sip-port, default 5060
        let mut sip_ports = Vec::new();
        for p in main.list("sip_port") {
            sip_ports.push(
                p.parse::<u16>()
                    .map_err(|_| invalid("sip_port", p.clone(), "a port number 1..65535"))?,
            );
        }
        if sip_ports.is_empty() {
            sip_ports.push(5060);
        }
        // leaf rotation-interval, default 900 (60..86400)
        let rotation: u64 = parsed(main, "rotation_interval", 900)?;
        if !(60..=86400).contains(&rotation) {
            return Err(invalid(
                "rotation_interval",
                rotation.to_string(),
                "60..86400 seconds",
            ));
        }
        // leaf mos-interval, default 10 (1..3600)
        let interval: u64 = parsed(main, "mos_interval", 10)?;
        if !(1..=3600).contains(&interval) || interval > rotation {
            return Err(invalid(
                "mos_interval",
                interval.to_string(),
                "1..3600 seconds and at most rotation_interval",
            ));
        }
        // leaf emodel, default itu-g107
        let emodel = main.get("emodel").unwrap_or("itu-g107");
        let variant = Variant::parse(emodel)
            .ok_or_else(|| invalid("emodel", emodel.to_string(), "itu-g107 or besip-simplified"))?;
        // leaf default-one-way-delay, default 0 ms
        let delay: u32 = parsed(main, "default_one_way_delay", 0)?;
        // leaf mos-threshold, default 3.60
        let mos_threshold: f64 = parsed(main, "mos_threshold", 3.6)?;
        if !(1.0..=5.0).contains(&mos_threshold) {
            return Err(invalid("mos_threshold", mos_threshold.to_string(), "1..5"));
        }
        // leaf retention, default 30 days
        let retention_days: u64 = parsed(main, "retention", 30)?;
        // list codec (payload-type key; clock-rate 8000, ie 0, bpl 25.1 defaults)
        let mut codecs = HashMap::new();
        for sec in pkg.sections_of("codec") {
            let pt: u8 = sec
                .get_parsed("payload_type")
                .context(UciSnafu)?
                .ok_or_else(|| {
                    invalid(
                        "payload_type",
                        String::new(),
                        "every codec entry needs a payload type",
                    )
                })?;
            if pt > 127 {
                return Err(invalid("payload_type", pt.to_string(), "0..127"));
            }
            let name = sec.get("name").unwrap_or("").to_string();
            let clock_rate: u32 = parsed(sec, "clock_rate", 8000)?;
            let ie: f64 = parsed(sec, "ie", 0.0)?;
            let bpl: f64 = parsed(sec, "bpl", 25.1)?;
            if clock_rate == 0 || !(0.0..=100.0).contains(&ie) || !(1.0..=100.0).contains(&bpl) {
                return Err(invalid(
                    "codec",
                    pt.to_string(),
                    "clock_rate > 0, ie 0..100, bpl 1..100",
                ));
            }
            codecs.insert(
                pt,
                Codec {
                    name,
                    clock_rate,
                    ie,
                    bpl,
                },
            );
        }
        Ok(MonitorConfig {
            interfaces,
            capture_filter,
            rotation_interval_s: rotation,
            mos_threshold,
            retention_days,
            settings: Settings {
                variant,
                interval_s: interval as f64,
                default_delay_ms: f64::from(delay),
                sip_ports,
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
