//! The BESIP package set: which files each OpenWrt package carries. One
//! multi-call binary (`besip-box`) in its own package; one package per daemon
//! (its program link, procd init script, UCI package and first-boot script);
//! the CLI; and the `besip` meta package that pulls in the whole box.

use crate::ipk::{Control, Tree};

const NETCONFD_INIT: &str = include_str!("../files/init.d/besip-netconfd");
const PBXD_INIT: &str = include_str!("../files/init.d/besip-pbxd");
const SECD_INIT: &str = include_str!("../files/init.d/besip-secd");
const MONITORD_INIT: &str = include_str!("../files/init.d/besip-monitord");
const UCI_DEFAULTS: &str = include_str!("../files/uci-defaults/90-besip");
const KEEP_D: &str = include_str!("../files/keep.d-besip");

/// Where the multi-call binary is installed; programs are links to it.
pub const BOX_PATH: &str = "/usr/bin/besip-box";

/// The programs and where the packages install them (links to BOX_PATH).
pub const PROGRAMS: [(&str, &str); 6] = [
    ("besip-netconfd", "/usr/sbin/besip-netconfd"),
    ("besip-pbxd", "/usr/sbin/besip-pbxd"),
    ("besip-secd", "/usr/sbin/besip-secd"),
    ("besip-monitord", "/usr/sbin/besip-monitord"),
    ("besip", "/usr/bin/besip"),
    // What the init scripts' reload_service runs on a hand edit of a package.
    ("besip-uci-import", "/usr/sbin/besip-uci-import"),
];

/// One package: its control data, files and conffiles.
pub struct PackageSpec {
    pub control: Control,
    pub data: Tree,
    pub conffiles: Vec<String>,
}

/// OpenWrt's architecture names for our targets.
pub fn openwrt_arch(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" => Some("x86_64"),
        "aarch64" => Some("aarch64_generic"),
        _ => None,
    }
}

struct Daemon {
    program: &'static str,
    init: &'static str,
    uci: &'static str,
    depends: &'static [&'static str],
    description: &'static str,
}

const DAEMONS: [Daemon; 4] = [
    Daemon {
        program: "besip-netconfd",
        init: NETCONFD_INIT,
        uci: "besip_system",
        depends: &[],
        description: "BESIP NETCONF over SSH server: validates every change against the YANG models, commits it atomically and renders /etc/config/besip_*.",
    },
    Daemon {
        program: "besip-pbxd",
        init: PBXD_INIT,
        uci: "besip_pbx",
        depends: &["besip-netconfd"],
        description: "BESIP SIP registrar, proxy and B2BUA.",
    },
    Daemon {
        program: "besip-secd",
        init: SECD_INIT,
        uci: "besip_security",
        // Bans go to the kernel through ipset + iptables (or nftables).
        depends: &["besip-netconfd", "ipset", "kmod-ipt-ipset", "iptables-nft"],
        description: "BESIP SIP security guard: flood, brute-force and scanner detection with kernel bans.",
    },
    Daemon {
        program: "besip-monitord",
        init: MONITORD_INIT,
        uci: "besip_monitoring",
        depends: &["besip-netconfd"],
        description: "BESIP call-quality monitor: RTP statistics, E-model MOS and the web panel.",
    },
];

/// Every package of the set, for `arch` ("x86_64" or "aarch64") and the
/// multi-call binary's bytes.
pub fn packages(version: &str, arch: &str, box_binary: Vec<u8>) -> Vec<PackageSpec> {
    let arch = openwrt_arch(arch).unwrap_or("all");
    let control = |package: &str, depends: Vec<String>, description: &str| Control {
        package: package.to_owned(),
        version: version.to_owned(),
        depends,
        source: "besip-rs".to_owned(),
        license: "GPL-2.0-or-later".to_owned(),
        section: "net".to_owned(),
        architecture: arch.to_owned(),
        description: description.to_owned(),
    };
    let mut specs = Vec::new();

    let mut data = Tree::default();
    data.file(BOX_PATH, 0o755, box_binary)
        .symlink("/usr/sbin/besip-uci-import", BOX_PATH)
        .file("/lib/upgrade/keep.d/besip", 0o644, KEEP_D)
        .file("/etc/uci-defaults/90-besip", 0o755, UCI_DEFAULTS)
        .dir("/etc/besip");
    specs.push(PackageSpec {
        control: control(
            "besip-box",
            vec![],
            "BESIP programs in one static multi-call binary (as busybox); the other besip packages link their programs to it.",
        ),
        data,
        conffiles: vec![],
    });

    for daemon in &DAEMONS {
        let mut data = Tree::default();
        let config = format!("/etc/config/{}", daemon.uci);
        data.symlink(&format!("/usr/sbin/{}", daemon.program), BOX_PATH)
            .file(
                &format!("/etc/init.d/{}", daemon.program),
                0o755,
                daemon.init,
            )
            // Rendered from running.xml by besip-netconfd at start; shipped
            // empty so opkg treats the user's version as a conffile.
            .file(&config, 0o644, "");
        let mut depends = vec![format!("besip-box (={version})")];
        depends.extend(daemon.depends.iter().map(|d| d.to_string()));
        specs.push(PackageSpec {
            control: control(daemon.program, depends, daemon.description),
            data,
            conffiles: vec![config],
        });
    }

    let mut data = Tree::default();
    data.symlink("/usr/bin/besip", BOX_PATH);
    specs.push(PackageSpec {
        control: control(
            "besip-cli",
            vec![format!("besip-box (={version})")],
            "BESIP unified command line (`besip`): the box's shell over NETCONF/SSH, export and import.",
        ),
        data,
        conffiles: vec![],
    });

    let mut everything: Vec<String> = DAEMONS.iter().map(|d| d.program.to_owned()).collect();
    everything.push("besip-cli".to_owned());
    specs.push(PackageSpec {
        control: control(
            "besip",
            everything,
            "BESIP telephony appliance: every daemon and the CLI.",
        ),
        data: Tree::default(),
        conffiles: vec![],
    });
    specs
}

/// Where the default IVR prompts are installed (besip-pbxd falls back to
/// them for any prompt its own store lacks).
pub const PROMPTS_DIR: &str = "/usr/share/besip/prompts";

/// Adds the default prompts (`name`, WAV bytes) to the besip-pbxd package.
pub fn add_prompts(specs: &mut [PackageSpec], prompts: &[(String, Vec<u8>)]) {
    let Some(pbxd) = specs.iter_mut().find(|s| s.control.package == "besip-pbxd") else {
        return;
    };
    for (name, wav) in prompts {
        pbxd.data
            .file(&format!("{PROMPTS_DIR}/{name}.wav"), 0o644, wav.clone());
    }
}
