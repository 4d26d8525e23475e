//! An opkg feed as OpenWrt's `ipkg-make-index.sh` and `usign` write it:
//! `Packages` (each package's control with Filename, Size and SHA256sum
//! inserted before Description), `Packages.gz`, `Packages.sig` (usign
//! Ed25519 over the uncompressed Packages) and the public key named after
//! its key id, ready for /etc/opkg/keys/.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use snafu::{ResultExt, Snafu};

use crate::catalog::PackageSpec;
use crate::ipk;
use crate::usign::{SecretKey, UsignError};

#[derive(Debug, Snafu)]
pub enum FeedError {
    #[snafu(display("cannot write {}: {source}", path.display()))]
    WriteFeed {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("cannot build package {package}: {source}"))]
    Package {
        package: String,
        source: std::io::Error,
    },
    #[snafu(display("signing the feed: {source}"))]
    Sign { source: UsignError },
}

/// What was written, for the size report.
pub struct FeedSummary {
    pub files: Vec<(String, u64)>,
    pub compressed_bytes: u64,
    pub installed_bytes: u64,
    pub key_id: Option<String>,
}

/// Build every package into `out` and index (and, given a key, sign) the feed.
pub fn write(
    out: &Path,
    specs: &[PackageSpec],
    key: Option<&SecretKey>,
) -> Result<FeedSummary, FeedError> {
    std::fs::create_dir_all(out).context(WriteFeedSnafu { path: out })?;
    let mut index = String::new();
    let mut summary = FeedSummary {
        files: Vec::new(),
        compressed_bytes: 0,
        installed_bytes: 0,
        key_id: None,
    };
    for spec in specs {
        let built =
            ipk::build(&spec.control, &spec.data, &spec.conffiles).context(PackageSnafu {
                package: spec.control.package.clone(),
            })?;
        let file_name = format!(
            "{}_{}_{}.ipk",
            spec.control.package, spec.control.version, spec.control.architecture
        );
        let path = out.join(&file_name);
        std::fs::write(&path, &built.ipk).context(WriteFeedSnafu { path: &path })?;
        index.push_str(&index_entry(&built.control, &file_name, &built.ipk));
        summary.files.push((file_name, built.ipk.len() as u64));
        summary.compressed_bytes += built.ipk.len() as u64;
        summary.installed_bytes += spec.data.file_bytes();
    }
    let packages = out.join("Packages");
    std::fs::write(&packages, &index).context(WriteFeedSnafu { path: &packages })?;
    let packages_gz = out.join("Packages.gz");
    let gz = ipk::gzip(index.as_bytes()).context(WriteFeedSnafu { path: &packages_gz })?;
    std::fs::write(&packages_gz, gz).context(WriteFeedSnafu { path: &packages_gz })?;
    if let Some(key) = key {
        let sig = out.join("Packages.sig");
        std::fs::write(&sig, key.sign(index.as_bytes())).context(WriteFeedSnafu { path: &sig })?;
        key.write_public_into(out).context(SignSnafu)?;
        summary.key_id = Some(key.key_id());
    }
    Ok(summary)
}

/// One paragraph of `Packages`, as ipkg-make-index.sh's sed inserts the
/// file's name, size and SHA-256 before the Description line.
fn index_entry(control: &str, file_name: &str, ipk: &[u8]) -> String {
    let inserted = format!(
        "Filename: {file_name}\nSize: {}\nSHA256sum: {}\nDescription:",
        ipk.len(),
        hex::encode(Sha256::digest(ipk))
    );
    let mut entry = control.replacen("Description:", &inserted, 1);
    if !entry.ends_with('\n') {
        entry.push('\n');
    }
    entry.push('\n');
    entry
}
