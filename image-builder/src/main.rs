//! `besip-image`: build the BESIP OpenWrt packages and feed, or the x86_64
//! disk image. See /work/notes or README for the walk-through.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use besip_image::apk::sign::ApkKey;
use besip_image::usign::SecretKey;
use besip_image::{apk, catalog, disk, feed, ipk};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "besip-image",
    about = "OpenWrt packages, signed feed and x86_64 disk image of BESIP"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Generate a usign key pair (as `usign -G`) to sign feeds with.
    Keygen {
        #[arg(long)]
        secret: PathBuf,
        #[arg(long)]
        public: PathBuf,
    },
    /// Generate an ECDSA P-256 key pair (as `openssl ecparam -name
    /// prime256v1 -genkey`) to sign the apk-tools v3 index with.
    ApkKeygen {
        #[arg(long)]
        secret: PathBuf,
        #[arg(long)]
        public: PathBuf,
    },
    /// Write the .ipk packages and the opkg feed (Packages, .gz, .sig, key)
    /// into OUT, and the same packages as apk-tools v3 .apk files with
    /// packages.adb (and the public key) into OUT/apk.
    Packages {
        #[arg(long, default_value = "x86_64")]
        arch: String,
        #[arg(long)]
        out: PathBuf,
        /// usign secret key; without it the feed is left unsigned.
        #[arg(long)]
        key: Option<PathBuf>,
        /// EC P-256 private key (PEM) for packages.adb; without it the apk
        /// index is left unsigned.
        #[arg(long)]
        apk_key: Option<PathBuf>,
        /// The static besip-box binary (default: built by scripts/build-musl.sh).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Default IVR prompts (a directory of WAV files) for
        /// /usr/share/besip/prompts (default: made by scripts/gen-prompts
        /// with espeak-ng and sox; none when those are missing).
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
    },
    /// Write the bootable x86_64 disk image (BIOS and UEFI).
    Disk {
        #[arg(long)]
        out: PathBuf,
        /// The static besip-box binary (default: built by scripts/build-musl.sh).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Password of the first admin (default: generated at first boot, shown on the console).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        /// Debian linux-image .deb (default: linux-image-cloud-amd64 via apt-get download).
        #[arg(long)]
        kernel_deb: Option<PathBuf>,
        /// Development images: a directory with the five separately built
        /// programs (e.g. target/debug, glibc); they are stripped and their
        /// shared libraries copied along. Replaces --binary.
        #[arg(long, conflicts_with = "binary")]
        programs_dir: Option<PathBuf>,
        /// squashfs compression: xz (smallest) or zstd (fastest to build).
        #[arg(long, default_value = "xz")]
        compression: String,
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// Default IVR prompts (a directory of WAV files) for
        /// /usr/share/besip/prompts (default: made by scripts/gen-prompts
        /// with espeak-ng and sox; none when those are missing).
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("besip-image: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Commands::Keygen { secret, public } => {
            let key = SecretKey::generate();
            key.write(&secret, &public).map_err(|e| e.to_string())?;
            println!("{}", key.key_id());
            Ok(())
        }
        Commands::ApkKeygen { secret, public } => {
            let key = ApkKey::generate();
            key.write(&secret, &public).map_err(|e| e.to_string())?;
            println!("{}", hex::encode(key.key_id()));
            Ok(())
        }
        Commands::Packages {
            arch,
            out,
            key,
            apk_key,
            binary,
            prompts,
            version,
        } => {
            catalog::openwrt_arch(&arch)
                .ok_or(format!("unknown arch {arch}: x86_64 or aarch64"))?;
            let binary = box_binary(binary, &arch)?;
            let bytes = std::fs::read(&binary).map_err(|e| format!("{}: {e}", binary.display()))?;
            let key = key
                .map(|k| SecretKey::read(&k))
                .transpose()
                .map_err(|e| e.to_string())?;
            let apk_key = apk_key
                .map(|k| ApkKey::read(&k))
                .transpose()
                .map_err(|e| e.to_string())?;
            let mut specs = catalog::packages(&version, &arch, bytes);
            catalog::add_prompts(&mut specs, &default_prompts(prompts)?);
            let summary = feed::write(&out, &specs, key.as_ref()).map_err(|e| e.to_string())?;
            let apk_summary = apk::write(
                &out.join("apk"),
                &specs,
                &format!("BESIP {version} {arch}"),
                apk_key.as_ref(),
            )
            .map_err(|e| e.to_string())?;
            for (file, size) in &apk_summary.files {
                println!("apk/{file}\t{size}");
            }
            if let Some(name) = &apk_summary.public_key {
                println!("apk index signed, public key apk/{name}");
            }
            for (file, size) in &summary.files {
                println!("{file}\t{size}");
            }
            println!(
                "total: {} bytes compressed, {} bytes installed{}",
                summary.compressed_bytes,
                summary.installed_bytes,
                summary
                    .key_id
                    .map(|k| format!(", signed with key {k}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Commands::Disk {
            out,
            binary,
            admin_password_file,
            kernel_deb,
            programs_dir,
            compression,
            busybox,
            prompts,
            version,
        } => {
            let bytes = match &programs_dir {
                Some(_) => Vec::new(),
                None => {
                    let binary = box_binary(binary, "x86_64")?;
                    std::fs::read(&binary).map_err(|e| format!("{}: {e}", binary.display()))?
                }
            };
            let admin_password = admin_password_file.map(|f| read_password(&f)).transpose()?;
            let work = out.with_extension("work");
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            let kernel_root = kernel(kernel_deb, &work.with_extension("kernel"))?;
            let mut packages = ipk::Tree::default();
            let mut specs = catalog::packages(&version, "x86_64", bytes);
            catalog::add_prompts(&mut specs, &default_prompts(prompts)?);
            for spec in specs {
                packages.merge(&spec.data);
            }
            if let Some(dir) = &programs_dir {
                for (program, path) in catalog::PROGRAMS {
                    packages.file(path, 0o755, stripped(&dir.join(program))?);
                }
            }
            let started = std::time::Instant::now();
            disk::build(&disk::DiskInput {
                packages,
                kernel_root: &kernel_root,
                busybox: &busybox,
                admin_password,
                compression: &compression,
                work: &work,
                out: &out,
            })
            .map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(&work);
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!(
                "{}: {size} bytes, built in {:.1} s",
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// The admin password given at build time: one line of printable characters
/// without blanks (it passes through the init script's environment).
fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty()
        || password
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"')
    {
        return Err(format!(
            "{}: the password must be one word without quotes",
            path.display()
        ));
    }
    Ok(password.to_owned())
}

/// A program's bytes without symbols (`strip -o`), for development images.
fn stripped(program: &Path) -> Result<Vec<u8>, String> {
    let out = std::env::temp_dir().join(format!("besip-image-strip-{}", std::process::id()));
    let status = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .status()
        .map_err(|e| format!("strip: {e}"))?;
    if !status.success() {
        return Err(format!("strip {} failed", program.display()));
    }
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    Ok(bytes)
}

/// The default prompts: the WAV files of `given`, or those
/// scripts/gen-prompts makes (espeak-ng + sox) in a scratch directory.
fn default_prompts(given: Option<PathBuf>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = match given {
        Some(d) => d,
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gen-prompts");
            let status = Command::new(&script)
                .arg(scratch.path())
                .status()
                .map_err(|e| format!("{}: {e}", script.display()))?;
            if !status.success() {
                return Err("scripts/gen-prompts failed".into());
            }
            scratch.path().to_owned()
        }
    };
    let mut prompts = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let (Some(name), Some("wav")) = (
            path.file_stem().and_then(|n| n.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        prompts.push((name.to_owned(), bytes));
    }
    prompts.sort();
    if prompts.is_empty() {
        eprintln!("no default prompts (espeak-ng or sox missing): IVR menus play tones");
    }
    Ok(prompts)
}

/// The multi-call binary: given, or built static for musl with the size profile.
fn box_binary(given: Option<PathBuf>, arch: &str) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-musl.sh");
    let output = Command::new(&script)
        .arg(arch)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !output.status.success() {
        return Err("building the musl binary failed".into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| "build-musl.sh printed no binary path".into())
}

/// Unpack Debian's kernel package into `dir` (downloaded with apt-get unless given).
fn kernel(deb: Option<PathBuf>, dir: &Path) -> Result<PathBuf, String> {
    let deb = match deb {
        Some(deb) => deb,
        None => {
            let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/image-cache");
            std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
            let found = |cache: &Path| {
                std::fs::read_dir(cache).ok().and_then(|entries| {
                    entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                        p.to_string_lossy().contains("linux-image-")
                            && p.extension().is_some_and(|x| x == "deb")
                    })
                })
            };
            match found(&cache) {
                Some(deb) => deb,
                None => {
                    let status = Command::new("sh")
                        .arg("-c")
                        .arg("apt-get download -q \"$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/ {print $2; exit}')\"")
                        .current_dir(&cache)
                        .status()
                        .map_err(|e| e.to_string())?;
                    if !status.success() {
                        return Err("apt-get download of linux-image-cloud-amd64 failed".into());
                    }
                    found(&cache).ok_or("no kernel package after apt-get download")?
                }
            }
        }
    };
    let _ = std::fs::remove_dir_all(dir);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed", deb.display()));
    }
    Ok(dir.to_owned())
}
