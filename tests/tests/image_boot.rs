//! The x86_64 disk image as a user gets it: `besip-image disk` builds it, qemu
//! boots it (software emulation, user-mode network with ports forwarded to
//! 127.0.0.1) and real clients use the box: ncclient configures two
//! extensions, sipp registers through the forwarded SIP port and calls, the
//! web panel logs in, STUN answers on 3478; after a reboot and after an upgrade (besip-sysupgrade
//! from a fresh image) the configuration is still there; a hand edit of
//! /etc/config/besip_pbx is committed by reload_config, an invalid one
//! refused and the file put back; after a factory reset it is gone. Every wait is bounded; the boot time is printed.
//!
//! The image holds the workspace's debug programs (glibc, their libraries
//! copied along) unless BESIP_IMAGE_BINARY names a static besip-box.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::bin_path;
use besip_tests::netconf::python;
use besip_tests::pbx::{caller_rejected, free_port, register_scenario, Sipp};
use besip_tests::web::{any_certificate, free_tcp_port, Client};

const ADMIN_PASSWORD: &str = "Image-admin-1";
const BOOT_LIMIT: Duration = Duration::from_secs(300);

struct Vm {
    qemu: Child,
    dir: PathBuf,
    netconf: u16,
    sip: u16,
    web: u16,
    /// Forwarded to the box's STUN port, 3478.
    stun: u16,
}

impl Vm {
    /// Boot `disk` and wait (bounded) until NETCONF answers; prints the boot time.
    fn boot(disk: &Path, dir: &Path, netconf: u16, sip: u16, web: u16) -> Vm {
        Vm::boot_with(disk, None, dir, netconf, sip, web)
    }

    /// Boot with `second` (if any) as a second disk (/dev/vdb in the box).
    fn boot_with(
        disk: &Path,
        second: Option<&Path>,
        dir: &Path,
        netconf: u16,
        sip: u16,
        web: u16,
    ) -> Vm {
        let serial = dir.join("serial.sock");
        let _ = std::fs::remove_file(&serial);
        let log = dir.join("console.log");
        let _ = std::fs::remove_file(&log);
        let started = Instant::now();
        let stun = free_port();
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-m", "1024", "-display", "none", "-no-reboot"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", disk.display()));
        // After the boot disk (/dev/vda): the upgrade source is /dev/vdb.
        if let Some(second) = second {
            qemu.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,readonly=on",
                second.display()
            ));
        }
        let qemu = qemu
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{netconf}-:830,hostfwd=udp:127.0.0.1:{sip}-:5060,hostfwd=tcp:127.0.0.1:{web}-:443,hostfwd=udp:127.0.0.1:{stun}-:3478"
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=s0,path={},server=on,wait=off,logfile={}",
                serial.display(),
                log.display()
            ))
            .args(["-serial", "chardev:s0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start qemu-system-x86_64 (scripts/install-deps installs qemu-system-x86)");
        let mut vm = Vm {
            qemu,
            dir: dir.to_owned(),
            netconf,
            sip,
            web,
            stun,
        };
        loop {
            let console = vm.console_log();
            if console.contains("besip: boot complete")
                && python(netconf, ADMIN_PASSWORD, "connect().close_session()").0
            {
                break;
            }
            assert!(
                started.elapsed() < BOOT_LIMIT,
                "the box did not come up within {BOOT_LIMIT:?}; console:\n{console}"
            );
            assert!(
                vm.qemu.try_wait().ok().flatten().is_none(),
                "qemu exited; console:\n{console}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        println!(
            "image boot: NETCONF answered {:.1} s after qemu started",
            started.elapsed().as_secs_f64()
        );
        vm
    }

    fn console_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// Type a command on the serial console (activating it first).
    fn type_command(&self, command: &str) {
        let mut stream =
            UnixStream::connect(self.dir.join("serial.sock")).expect("connect serial console");
        stream.write_all(b"\n").expect("write console");
        std::thread::sleep(Duration::from_secs(2));
        stream
            .write_all(format!("{command}\n").as_bytes())
            .expect("write console");
        std::thread::sleep(Duration::from_secs(1));
    }

    /// Wait (bounded) until the console shows `needle`.
    fn wait_console(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.console_log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on the console within 120 s:\n{}",
                self.console_log()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Run `command` (which reboots) and wait for qemu to exit (-no-reboot).
    fn shut_down_with(mut self, command: &str) {
        self.type_command(command);
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.qemu.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.qemu.kill();
                panic!(
                    "`{command}` did not restart the box; console:\n{}",
                    self.console_log()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// Sends a STUN Binding request (RFC 5389) to 127.0.0.1:`port` and returns
/// the XOR-MAPPED-ADDRESS of the success response (retried for 10 s while
/// the box starts its daemons).
fn stun_binding(port: u16) -> std::net::SocketAddr {
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let transaction: [u8; 12] = *b"besip-image1";
    let mut request = vec![0x00, 0x01, 0x00, 0x00];
    request.extend_from_slice(&COOKIE);
    request.extend_from_slice(&transaction);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    let response = loop {
        assert!(Instant::now() < deadline, "no STUN answer on 3478");
        socket.send_to(&request, ("127.0.0.1", port)).expect("send");
        if let Ok(n) = socket.recv(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    assert_eq!(&response[..2], &[0x01, 0x01], "a Binding success response");
    assert_eq!(&response[8..20], &transaction, "our transaction");
    let mut attrs = &response[20..];
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = &attrs[4..4 + len];
        if kind == 0x0020 && value.len() == 8 && value[1] == 0x01 {
            let port = u16::from_be_bytes([value[2] ^ COOKIE[0], value[3] ^ COOKIE[1]]);
            let ip = std::net::Ipv4Addr::new(
                value[4] ^ COOKIE[0],
                value[5] ^ COOKIE[1],
                value[6] ^ COOKIE[2],
                value[7] ^ COOKIE[3],
            );
            return std::net::SocketAddr::new(ip.into(), port);
        }
        attrs = &attrs[(4 + len.next_multiple_of(4)).min(attrs.len())..];
    }
    panic!("no XOR-MAPPED-ADDRESS in {response:?}");
}

fn running_config(port: u16) -> String {
    let (ok, out) = python(
        port,
        ADMIN_PASSWORD,
        "print(connect().get_config('running').data_xml)",
    );
    assert!(ok, "get-config failed: {out}");
    out
}

fn build_image(dir: &Path) -> PathBuf {
    let disk = dir.join("besip-x86_64.img");
    // For re-running the boot part only: an image built before with this
    // test's password file.
    if let Some(prebuilt) = std::env::var_os("BESIP_IMAGE_PREBUILT") {
        std::fs::copy(prebuilt, &disk).expect("copy the prebuilt image");
        return disk;
    }
    let password = dir.join("admin-password");
    std::fs::write(&password, format!("{ADMIN_PASSWORD}\n")).expect("write password file");
    let mut command = Command::new(bin_path("besip-image"));
    command
        .arg("disk")
        .arg("--out")
        .arg(&disk)
        .arg("--admin-password-file")
        .arg(&password);
    match std::env::var_os("BESIP_IMAGE_BINARY") {
        Some(binary) => command.arg("--binary").arg(binary),
        None => command
            .arg("--programs-dir")
            .arg(bin_path("besip-netconfd").parent().expect("target dir"))
            .args(["--compression", "zstd"]),
    };
    let started = Instant::now();
    let output = command.output().expect("run besip-image");
    assert!(
        output.status.success(),
        "besip-image disk failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("image build: {:.1} s", started.elapsed().as_secs_f64());
    disk
}

#[test]
fn booted_image_serves_netconf_sip_and_web_and_keeps_config_until_factory_reset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = build_image(dir.path());
    // The upgrade source: the image as built, before any boot wrote to it.
    let fresh = dir.path().join("fresh.img");
    std::fs::copy(&disk, &fresh).expect("copy the image");
    let (netconf, sip, web) = (free_tcp_port(), free_port(), free_tcp_port());

    let vm = Vm::boot(&disk, dir.path(), netconf, sip, web);
    let config = "<config><pbx xmlns=\"urn:besip:pbx\"><domain>besip.test</domain>\
<extension><number>100</number><password>pw100</password></extension>\
<extension><number>101</number><password>pw101</password></extension></pbx></config>";
    let (ok, out) = python(
        vm.netconf,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='{config}'); m.commit()"),
    );
    assert!(ok, "configuring two extensions over NETCONF failed: {out}");
    let running = running_config(vm.netconf);
    assert!(
        running.contains("<number>100</number>") && running.contains("<number>101</number>"),
        "{running}"
    );

    // SIP through the forwarded UDP port: 100 registers, then calls 101, who
    // is not registered; the PBX authenticates the INVITE and answers 480.
    // sipp would put its own idea of the server (127.0.0.1:<forwarded port>)
    // in the digest uri; behind this NAT the box's domain is the right one.
    let sipp = Sipp::new();
    let auth = ["-au", "100", "-ap", "pw100", "-auth_uri", "besip.test"];
    let registered = sipp.run(
        "register-100",
        &register_scenario("100", 3600, 200),
        free_port(),
        vm.sip,
        &auth,
    );
    assert!(
        registered.success,
        "REGISTER through the image failed:\n{}",
        registered.log
    );
    let call = sipp.run(
        "call-101",
        &caller_rejected("100", "101", 480),
        free_port(),
        vm.sip,
        &auth,
    );
    assert!(
        call.success,
        "call 100 -> 101 through the image failed:\n{}",
        call.log
    );

    // The first-boot configuration serves STUN on 3478: a Binding request
    // through the forwarded port gets a success response carrying the
    // mapped address of qemu's user network (10.0.2.2).
    let mapped = stun_binding(vm.stun);
    assert_eq!(mapped.ip().to_string(), "10.0.2.2", "STUN mapped address");

    // Kernel forwarding of RTP (/pbx/rtp/kernel-forwarding) switched on
    // over NETCONF: the image's besip-pbxd makes its nftables table (the
    // image's nft and nf_tables, busybox's ip), and the image's kernel loads
    // the expressions a flow's rules use (fib, fwd on the netdev family).
    let (ok, out) = python(
        vm.netconf,
        ADMIN_PASSWORD,
        "m = connect(); m.edit_config(target='candidate', config='<config><pbx xmlns=\"urn:besip:pbx\"><rtp><kernel-forwarding>true</kernel-forwarding></rtp></pbx></config>'); m.commit()",
    );
    assert!(ok, "switching kernel forwarding on failed: {out}");
    vm.type_command(
        "for i in 1 2 3 4 5 6 7 8 9 10; do nft list table netdev besip_relay 2>/dev/null | grep -q 'map flows6' && echo KERNEL-TABLE-$((40+2)) && break; sleep 1; done",
    );
    vm.wait_console("KERNEL-TABLE-42");
    vm.type_command(
        "printf 'add table netdev t\\nadd chain netdev t c { type filter hook ingress device \"lo\" priority 0; }\\nadd rule netdev t c fib daddr type local udp dport 9 fwd ip to 127.0.0.1 device \"lo\"\\n' | nft -f - && nft delete table netdev t && echo KERNEL-FWD-$((40+3))",
    );
    vm.wait_console("KERNEL-FWD-43");

    // The default IVR prompts (espeak-ng, made when the image was built)
    // are where besip-pbxd falls back to for prompts it was not given.
    vm.type_command("ls /usr/share/besip/prompts/ | tr '\\n' ' '; echo");
    vm.wait_console("vm-greeting.wav welcome.wav");

    // The web panel logs the administrator in, over HTTPS on 443 (the
    // certificate was generated inside the guest on its first start).
    Client::new(vm.web, any_certificate()).login_ok("admin", ADMIN_PASSWORD);

    // A reboot keeps the configuration (it lives on the overlay partition).
    vm.shut_down_with("reboot");
    let vm = Vm::boot_with(&disk, Some(&fresh), dir.path(), netconf, sip, web);
    let running = running_config(vm.netconf);
    assert!(
        running.contains("<number>101</number>"),
        "configuration lost by a reboot: {running}"
    );

    // A hand edit of /etc/config/besip_pbx (what `uci commit` leaves), then
    // reload_config: procd's reload trigger imports it through the datastore.
    // A valid edit is committed; an invalid one (display-name is at most 64
    // characters) is refused with file, line and YANG path and the file put
    // back. (The markers are computed so the typed command's echo cannot match.)
    vm.type_command(
        "sed -i \"s/option number '101'/option number '101'\\n option display_name 'Hand'/\" /etc/config/besip_pbx; reload_config; echo HAND-EDIT-A=$?",
    );
    vm.wait_console("HAND-EDIT-A=0");
    let running = running_config(vm.netconf);
    assert!(
        running.contains("<display-name>Hand</display-name>"),
        "the hand edit was not committed: {running}"
    );
    let too_long = "x".repeat(65);
    vm.type_command(&format!(
        "sed -i \"s/'Hand'/'{too_long}'/\" /etc/config/besip_pbx; reload_config; echo HAND-EDIT-B=$?; grep -q {too_long} /etc/config/besip_pbx || echo RESTORED-$((40+2))"
    ));
    vm.wait_console("HAND-EDIT-B=1");
    vm.wait_console("RESTORED-42");
    let console = vm.console_log();
    assert!(
        console.contains("/etc/config/besip_pbx:")
            && console.contains("edit refused")
            && console.contains("YANG path /besip-pbx:pbx/extension[number='101']/display-name"),
        "the refusal does not name file, line and YANG path:\n{console}"
    );
    let running = running_config(vm.netconf);
    assert!(
        running.contains("<display-name>Hand</display-name>"),
        "the refused edit changed running: {running}"
    );

    // An upgrade to a fresh image (attached as the second disk) keeps it too.
    vm.shut_down_with("besip-sysupgrade /dev/vdb");
    let vm = Vm::boot(&disk, dir.path(), netconf, sip, web);
    assert!(
        vm.console_log().contains("besip-init: root /dev/vda2"),
        "booted from the wrong disk after the upgrade"
    );
    let running = running_config(vm.netconf);
    assert!(
        running.contains("<number>101</number>"),
        "configuration lost by an upgrade: {running}"
    );

    // A factory reset erases it; the admin given at build time is back.
    vm.shut_down_with("besip-factory-reset -y");
    let vm = Vm::boot(&disk, dir.path(), netconf, sip, web);
    let running = running_config(vm.netconf);
    assert!(
        !running.contains("<number>101</number>"),
        "configuration survived a factory reset: {running}"
    );
    drop(vm);
}
