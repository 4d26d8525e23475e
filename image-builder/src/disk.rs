//! The bootable x86_64 disk image (`besip-image disk`), OpenWrt's x86 layout:
//!
//! | partition | contents |
//! |---|---|
//! | 1, FAT, type EF (ESP), 32 MiB | kernel, initramfs, GRUB config; `EFI/BOOT/BOOTX64.EFI` |
//! | 2, squashfs | the read-only root: busybox, firewall tools, the BESIP packages' files |
//! | 3, ext4 | the writable overlay: configuration and state (a factory reset erases it) |
//!
//! BIOS boot: GRUB's boot.img in the MBR and core.img in the gap before
//! partition 1. The kernel is Debian's `linux-image-cloud-amd64`; busybox is
//! Debian's static build. Files are assembled with the host's mksquashfs,
//! mkfs.vfat + mtools, mkfs.ext4, sfdisk and grub-mkimage: no loop mounts, no root.

use std::collections::{BTreeSet, HashMap};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use snafu::{ensure, ResultExt, Snafu};

use crate::ipk::{Node, Tree};

#[derive(Debug, Snafu)]
pub enum DiskError {
    #[snafu(display("{what}: {source}"))]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[snafu(display("`{command}` failed: {detail}"))]
    Tool { command: String, detail: String },
    #[snafu(display("{message}"))]
    Input { message: String },
}

const MIB: u64 = 1024 * 1024;
const BOOT_MIB: u64 = 32;
const DATA_MIB: u64 = 128;

/// Storage and filesystem drivers the initramfs loads (with their dependencies).
const INITRAMFS_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "ata_piix",
    "sd_mod",
    "nvme",
    "squashfs",
    "overlay",
];
/// Kernel module directories copied into the root (network drivers, netfilter).
const ROOT_MODULE_DIRS: &[&str] = &[
    "kernel/net/netfilter",
    "kernel/net/ipv4/netfilter",
    "kernel/net/ipv6/netfilter",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/ethernet/intel/e1000",
    "kernel/lib",
    "kernel/crypto",
];

pub struct DiskInput<'a> {
    /// Files of every BESIP package, merged.
    pub packages: Tree,
    /// Unpacked linux-image package (boot/vmlinuz-*, lib/modules/*).
    pub kernel_root: &'a Path,
    pub busybox: &'a Path,
    pub admin_password: Option<String>,
    /// squashfs compressor: "xz" or "zstd".
    pub compression: &'a str,
    pub work: &'a Path,
    pub out: &'a Path,
}

fn run(command: &mut Command) -> Result<(), DiskError> {
    let shown = format!("{command:?}");
    let output = command.output().context(IoSnafu {
        what: shown.clone(),
    })?;
    ensure!(
        output.status.success(),
        ToolSnafu {
            command: shown,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned()
        }
    );
    Ok(())
}

fn io<T>(what: impl Into<String>, result: std::io::Result<T>) -> Result<T, DiskError> {
    result.context(IoSnafu { what: what.into() })
}

/// Write a tree below `dir` (symlinks as symlinks, modes kept).
fn materialize(tree: &Tree, dir: &Path) -> Result<(), DiskError> {
    use std::os::unix::fs::PermissionsExt;
    for (path, node) in tree.nodes() {
        let target = dir.join(path);
        match node {
            Node::Dir => io(
                format!("mkdir {}", target.display()),
                std::fs::create_dir_all(&target),
            )?,
            Node::File { mode, contents } => {
                if let Some(parent) = target.parent() {
                    io("mkdir", std::fs::create_dir_all(parent))?;
                }
                io(
                    format!("write {}", target.display()),
                    std::fs::write(&target, contents),
                )?;
                io(
                    "chmod",
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode)),
                )?;
            }
            Node::Symlink { target: link } => {
                if let Some(parent) = target.parent() {
                    io("mkdir", std::fs::create_dir_all(parent))?;
                }
                let _ = std::fs::remove_file(&target);
                io(
                    format!("symlink {}", target.display()),
                    std::os::unix::fs::symlink(link, &target),
                )?;
            }
        }
    }
    Ok(())
}

/// Files of the image that are not in any package: init, the procd subset,
/// DHCP, factory reset and upgrade commands.
fn image_files(password: Option<&str>) -> Tree {
    let mut tree = Tree::default();
    tree.file("etc/inittab", 0o644, include_str!("../files/image/inittab"))
        .file("etc/init.d/rcS", 0o755, include_str!("../files/image/rcS"))
        .file("etc/init.d/rcK", 0o755, include_str!("../files/image/rcK"))
        .file(
            "etc/rc.common",
            0o755,
            include_str!("../files/image/rc.common"),
        )
        .file(
            "lib/besip/supervise",
            0o755,
            include_str!("../files/image/supervise"),
        )
        .file(
            "usr/share/udhcpc/default.script",
            0o755,
            include_str!("../files/image/udhcpc.script"),
        )
        .file(
            "sbin/reload_config",
            0o755,
            include_str!("../files/image/reload_config"),
        )
        .file(
            "usr/sbin/besip-factory-reset",
            0o755,
            include_str!("../files/image/besip-factory-reset"),
        )
        .file(
            "usr/sbin/besip-sysupgrade",
            0o755,
            include_str!("../files/image/besip-sysupgrade"),
        )
        .file("etc/hostname", 0o644, "besip\n")
        .file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n")
        .file("etc/shadow", 0o600, "root:*:0:0:99999:7:::\n")
        .file("etc/group", 0o644, "root:x:0:\n")
        .file(
            "etc/profile",
            0o644,
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='besip# '\n",
        )
        .file("etc/resolv.conf", 0o644, "")
        .file("etc/banner", 0o644, "BESIP-rs telephony appliance\n")
        .dir("proc")
        .dir("sys")
        .dir("dev")
        .dir("tmp")
        .dir("root")
        .dir("rom")
        .dir("overlay")
        .dir("run")
        .dir("var/run")
        .dir("var/lib/besip")
        .dir("var/log")
        .dir("etc/rc.d");
    for (start, stop, name) in [
        (60, 40, "besip-netconfd"),
        (61, 39, "besip-pbxd"),
        (61, 39, "besip-secd"),
        (61, 39, "besip-monitord"),
    ] {
        tree.symlink(
            &format!("etc/rc.d/S{start}{name}"),
            &format!("../init.d/{name}"),
        )
        .symlink(
            &format!("etc/rc.d/K{stop}{name}"),
            &format!("../init.d/{name}"),
        );
    }
    if let Some(password) = password {
        tree.file(
            "etc/besip/admin-password.initial",
            0o600,
            password.to_owned(),
        );
    }
    tree
}

/// `module name` → (path relative to lib/modules/VERSION, dependencies' paths).
fn modules_dep(modules_dir: &Path) -> Result<HashMap<String, (String, Vec<String>)>, DiskError> {
    let text = io(
        "read modules.dep",
        std::fs::read_to_string(modules_dir.join("modules.dep")),
    )?;
    let mut map = HashMap::new();
    for line in text.lines() {
        let Some((module, deps)) = line.split_once(':') else {
            continue;
        };
        let name = Path::new(module)
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(".ko")
                    .replace('-', "_")
            })
            .unwrap_or_default();
        map.insert(
            name,
            (
                module.to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            ),
        );
    }
    Ok(map)
}

/// Module paths in load order (dependencies first), deduplicated.
fn load_order(dep: &HashMap<String, (String, Vec<String>)>, names: &[&str]) -> Vec<String> {
    let by_path: HashMap<&str, &Vec<String>> = dep.values().map(|(p, d)| (p.as_str(), d)).collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in names {
        let Some((path, deps)) = dep.get(*name) else {
            continue;
        };
        // modules.dep lists the full transitive closure, innermost last.
        for module in deps.iter().rev().chain(std::iter::once(path)) {
            if seen.insert(module.clone()) {
                let _ = by_path.get(module.as_str());
                order.push(module.clone());
            }
        }
    }
    order
}

fn copy_file(from: &Path, to: &Path) -> Result<(), DiskError> {
    if let Some(parent) = to.parent() {
        io("mkdir", std::fs::create_dir_all(parent))?;
    }
    io(format!("copy {}", from.display()), std::fs::copy(from, to)).map(|_| ())
}

/// Copy a dynamically linked host binary and the shared libraries it needs.
fn copy_with_libraries(binary: &Path, root: &Path, dest: &str) -> Result<(), DiskError> {
    copy_file(binary, &root.join(dest))?;
    copy_libraries(binary, root)
}

/// Copy the shared libraries `ldd` lists for `binary` (none for static ones).
fn copy_libraries(binary: &Path, root: &Path) -> Result<(), DiskError> {
    let output = io("ldd", Command::new("ldd").arg(binary).output())?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(library) = path {
            let resolved = io("canonicalize", std::fs::canonicalize(library))?;
            copy_file(&resolved, &root.join(library.trim_start_matches('/')))?;
        }
    }
    Ok(())
}

fn kernel_version(kernel_root: &Path) -> Result<String, DiskError> {
    let dir = io(
        "read kernel modules dir",
        std::fs::read_dir(kernel_root.join("lib/modules")),
    )?;
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| DiskError::Input {
            message: "the kernel package has no lib/modules/<version>".into(),
        })
}

/// Build the disk image. Returns the paths of the image and its parts.
pub fn build(input: &DiskInput) -> Result<PathBuf, DiskError> {
    let work = input.work;
    let _ = std::fs::remove_dir_all(work);
    let rootfs = work.join("rootfs");
    let initramfs = work.join("initramfs");
    io("mkdir work", std::fs::create_dir_all(&rootfs))?;
    io("mkdir work", std::fs::create_dir_all(&initramfs))?;

    let version = kernel_version(input.kernel_root)?;
    let modules_src = input.kernel_root.join("lib/modules").join(&version);
    if !modules_src.join("modules.dep").exists() {
        run(Command::new(input.busybox)
            .args(["depmod", "-b"])
            .arg(input.kernel_root)
            .arg(&version))?;
    }
    let dep = modules_dep(&modules_src)?;

    // The root file system.
    materialize(&input.packages, &rootfs)?;
    materialize(&image_files(input.admin_password.as_deref()), &rootfs)?;
    // Programs of a development build (glibc) bring their shared libraries.
    for (_, path) in crate::catalog::PROGRAMS {
        let program = rootfs.join(path.trim_start_matches('/'));
        if program.is_file() && !program.is_symlink() {
            copy_libraries(&program, &rootfs)?;
        }
    }
    copy_file(input.busybox, &rootfs.join("bin/busybox"))?;
    let applets = io(
        "busybox --list-full",
        Command::new(input.busybox).arg("--list-full").output(),
    )?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let link = rootfs.join(applet);
        if link.exists() || applet.is_empty() {
            continue;
        }
        if let Some(parent) = link.parent() {
            io("mkdir", std::fs::create_dir_all(parent))?;
        }
        io(
            "applet link",
            std::os::unix::fs::symlink("/bin/busybox", &link),
        )?;
    }
    for (tool, dest) in [
        (
            "/usr/sbin/xtables-legacy-multi",
            "usr/sbin/xtables-legacy-multi",
        ),
        ("/usr/sbin/ipset", "usr/sbin/ipset"),
        ("/usr/sbin/nft", "usr/sbin/nft"),
    ] {
        if Path::new(tool).exists() {
            copy_with_libraries(Path::new(tool), &rootfs, dest)?;
        }
    }
    // iptables loads its matches and targets (e.g. `-m set`) as plugins, which
    // ldd does not list.
    let xtables = Path::new("/usr/lib/x86_64-linux-gnu/xtables");
    if xtables.is_dir() {
        copy_tree(xtables, &rootfs.join("usr/lib/x86_64-linux-gnu/xtables"))?;
    }
    for link in ["iptables", "iptables-save", "iptables-restore", "ip6tables"] {
        let path = rootfs.join("usr/sbin").join(link);
        let _ = std::fs::remove_file(&path);
        io(
            "iptables link",
            std::os::unix::fs::symlink("xtables-legacy-multi", &path),
        )?;
    }
    let modules_dst = rootfs.join("lib/modules").join(&version);
    for entry in ROOT_MODULE_DIRS {
        let from = modules_src.join(entry);
        if from.is_dir() {
            run(Command::new("cp")
                .arg("-a")
                .arg(&from)
                .arg(modules_dst.join(entry).parent().unwrap_or(&modules_dst))
                .arg("--parents")
                .current_dir(&modules_src)
                .arg("--no-target-directory"))
            .or_else(|_| copy_tree(&from, &modules_dst.join(entry)))?;
        } else if from.exists() {
            copy_file(&from, &modules_dst.join(entry))?;
        }
    }
    for file in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if modules_src.join(file).exists() {
            copy_file(&modules_src.join(file), &modules_dst.join(file))?;
        }
    }
    run(Command::new(input.busybox)
        .args(["depmod", "-b"])
        .arg(&rootfs)
        .arg(&version))?;
    let squashfs = work.join("root.squashfs");
    run(Command::new("mksquashfs")
        .arg(&rootfs)
        .arg(&squashfs)
        .args([
            "-comp",
            "xz",
            "-noappend",
            "-all-root",
            "-quiet",
            "-no-progress",
        ]))?;

    // The initramfs: busybox, the storage drivers, /init.
    copy_file(input.busybox, &initramfs.join("bin/busybox"))?;
    let order = load_order(&dep, INITRAMFS_MODULES);
    for module in &order {
        copy_file(
            &modules_src.join(module),
            &initramfs.join("lib/modules").join(module),
        )?;
    }
    io(
        "load-order",
        std::fs::write(
            initramfs.join("lib/modules/load-order"),
            order.join("\n") + "\n",
        ),
    )?;
    let mut init = Tree::default();
    init.file("init", 0o755, include_str!("../files/image/initramfs-init"));
    materialize(&init, &initramfs)?;
    let initrd = work.join("initrd.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9 -n > '{}'",
        initramfs.display(),
        initrd.display()
    )))?;

    // Partition 1: ESP with GRUB (UEFI binary, config) and the kernel.
    let vmlinuz = input
        .kernel_root
        .join("boot")
        .join(format!("vmlinuz-{version}"));
    let grub_cfg = work.join("grub.cfg");
    io("grub.cfg", std::fs::write(&grub_cfg, GRUB_CFG))?;
    let efi = work.join("BOOTX64.EFI");
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/boot/grub", "-o"])
        .arg(&efi)
        .args(GRUB_MODULES)
        .arg("efi_gop"))?;
    let core = work.join("core.img");
    run(Command::new("grub-mkimage")
        .args(["-O", "i386-pc", "-p", "(hd0,msdos1)/boot/grub", "-o"])
        .arg(&core)
        .args(GRUB_MODULES)
        .arg("biosdisk"))?;
    let boot = work.join("boot.fat");
    run(Command::new("mkfs.vfat")
        .args(["-n", "BESIP_BOOT", "-C"])
        .arg(&boot)
        .arg((BOOT_MIB * 1024).to_string()))?;
    for dir in ["::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub"] {
        run(Command::new("mmd").arg("-i").arg(&boot).arg(dir))?;
    }
    for (file, dest) in [
        (&efi, "::/EFI/BOOT/BOOTX64.EFI"),
        (&vmlinuz, "::/boot/vmlinuz"),
        (&initrd, "::/boot/initrd.gz"),
        (&grub_cfg, "::/boot/grub/grub.cfg"),
    ] {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&boot)
            .arg(file)
            .arg(dest))?;
    }

    // Partition 3: the empty overlay.
    let data = work.join("data.ext4");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "besip_data", "-O", "^has_journal"])
        .arg(&data)
        .arg(format!("{DATA_MIB}M")))?;

    assemble(input.out, &core, &boot, &squashfs, &data)?;
    Ok(input.out.to_owned())
}

const GRUB_MODULES: &[&str] = &[
    "part_msdos",
    "fat",
    "normal",
    "linux",
    "configfile",
    "search",
    "serial",
    "terminal",
    "gzio",
    "echo",
    "test",
    "boot",
];

const GRUB_CFG: &str = "serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry 'BESIP' {
    linux /boot/vmlinuz console=tty0 console=ttyS0,115200 panic=5 quiet loglevel=3
    initrd /boot/initrd.gz
}
";

fn copy_tree(from: &Path, to: &Path) -> Result<(), DiskError> {
    run(Command::new("mkdir").arg("-p").arg(to))?;
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to))
}

/// Lay the partitions out on the disk with sfdisk, then put GRUB's boot
/// code into the MBR (first 440 bytes) and core.img into the gap before
/// partition 1, as grub-bios-setup does for an MBR disk.
fn assemble(
    out: &Path,
    core: &Path,
    boot: &Path,
    root: &Path,
    data: &Path,
) -> Result<(), DiskError> {
    let size_of =
        |p: &Path| io(format!("stat {}", p.display()), std::fs::metadata(p)).map(|m| m.len());
    let mib = |bytes: u64| bytes.div_ceil(MIB);
    let boot_mib = mib(size_of(boot)?);
    let root_mib = mib(size_of(root)?) + 1;
    let data_mib = mib(size_of(data)?);
    let core_len = size_of(core)?;
    ensure!(
        core_len < MIB - 512,
        InputSnafu {
            message: format!("GRUB core.img too large ({core_len} bytes)")
        }
    );
    let total = 1 + boot_mib + root_mib + data_mib;
    let _ = std::fs::remove_file(out);
    let file = io(
        format!("create {}", out.display()),
        std::fs::File::create(out),
    )?;
    io("size image", file.set_len(total * MIB))?;
    drop(file);
    let layout = format!(
        "label: dos\nstart=1MiB, size={boot_mib}MiB, type=ef, bootable\nsize={root_mib}MiB, type=83\nsize={data_mib}MiB, type=83\n"
    );
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(out);
    sfdisk.stdin(std::process::Stdio::piped());
    let mut child = io("sfdisk", sfdisk.spawn())?;
    if let Some(mut stdin) = child.stdin.take() {
        io("sfdisk input", stdin.write_all(layout.as_bytes()))?;
    }
    let status = io("sfdisk", child.wait())?;
    ensure!(
        status.success(),
        ToolSnafu {
            command: "sfdisk".to_string(),
            detail: layout
        }
    );

    let mut disk = io(
        "open image",
        std::fs::OpenOptions::new().write(true).read(true).open(out),
    )?;
    let mut offset = MIB;
    for (part, mib_len) in [(boot, boot_mib), (root, root_mib), (data, data_mib)] {
        let bytes = io("read part", std::fs::read(part))?;
        io("seek", disk.seek(SeekFrom::Start(offset)))?;
        io("write part", disk.write_all(&bytes))?;
        offset += mib_len * MIB;
    }
    let boot_img = io(
        "read GRUB boot.img",
        std::fs::read("/usr/lib/grub/i386-pc/boot.img"),
    )?;
    ensure!(
        boot_img.len() == 512,
        InputSnafu {
            message: "GRUB boot.img is not one sector".to_string()
        }
    );
    io("seek", disk.seek(SeekFrom::Start(0)))?;
    io("write MBR code", disk.write_all(&boot_img[..440]))?;
    io("seek", disk.seek(SeekFrom::Start(512)))?;
    io(
        "write core.img",
        disk.write_all(&io("read core.img", std::fs::read(core))?),
    )?;
    io("sync image", disk.sync_all())
}
