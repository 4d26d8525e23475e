//! `.apk` packages for apk-tools v3 (OpenWrt 25.x) and their signed
//! `packages.adb` index, as `apk mkpkg` and `apk mkndx` write them
//! (apk-tools src/app_mkpkg.c, src/app_mkndx.c; schemas in src/apk_adb.h,
//! src/apk_adb.c). The container encoding is in `adb`, the key and
//! signature in `sign`.
//!
//! A package is a "pckg" ADB: `info` (pkginfo), `paths` (directories, each
//! with its files: name, acl, size, mtime, SHA-256, or a symlink target),
//! `scripts`; then one DATA block per non-empty regular file. Its pkginfo
//! `hashes` holds a 20-byte unique id (SHA-256 of the ADB block with the
//! id zeroed, as mkpkg fills it in). The index is an "indx" ADB listing each
//! package's pkginfo with `hashes` replaced by the SHA-256 of the package's
//! ADB block (what apk checks a downloaded package against) and
//! `file-size`. Given a key, the index is signed (what apk trusts a
//! repository by; its hashes then cover the packages) and so is each
//! package (SIG block between the ADB and DATA blocks, as `apk mkpkg
//! --sign`), so a single .apk verifies on its own too.

pub mod adb;
pub mod sign;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use snafu::{ResultExt, Snafu};

use crate::catalog::PackageSpec;
use crate::ipk::{Node, Tree, MTIME};
use adb::{Adb, AdbError, NULL, SCHEMA_INDEX, SCHEMA_PACKAGE};
use sign::{ApkKey, KeyError};

#[derive(Debug, Snafu)]
pub enum ApkError {
    #[snafu(display("cannot write {}: {source}", path.display()))]
    WriteApk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("package {package}: {source}"))]
    Encode { package: String, source: AdbError },
    #[snafu(display("package {package}: {reason}"))]
    Invalid { package: String, reason: String },
    #[snafu(display("the index: {source}"))]
    Index { source: AdbError },
    #[snafu(display("signing package {package}: {source}"))]
    SignPackage { package: String, source: KeyError },
    #[snafu(display("signing the index: {source}"))]
    SignIndex { source: KeyError },
}

// Field numbers (src/apk_adb.h).
const PI_NAME: usize = 1;
const PI_VERSION: usize = 2;
const PI_HASHES: usize = 3;
const PI_DESCRIPTION: usize = 4;
const PI_ARCH: usize = 5;
const PI_LICENSE: usize = 6;
const PI_ORIGIN: usize = 7;
const PI_URL: usize = 9;
const PI_INSTALLED_SIZE: usize = 12;
const PI_FILE_SIZE: usize = 13;
const PI_DEPENDS: usize = 15;
const PI_PROVIDES: usize = 16;
const PI_MAX: usize = 22;

const ACL_MODE: usize = 1;
const ACL_USER: usize = 2;
const ACL_GROUP: usize = 3;
const ACL_MAX: usize = 5;

const FI_NAME: usize = 1;
const FI_ACL: usize = 2;
const FI_SIZE: usize = 3;
const FI_MTIME: usize = 4;
const FI_HASHES: usize = 5;
const FI_TARGET: usize = 6;
const FI_MAX: usize = 7;

const DI_NAME: usize = 1;
const DI_ACL: usize = 2;
const DI_FILES: usize = 3;
const DI_MAX: usize = 4;

const SCRPT_POSTINST: usize = 3;
const SCRPT_PREDEINST: usize = 4;
const SCRPT_POSTUPGRADE: usize = 7;
const SCRPT_MAX: usize = 8;

const PKG_PKGINFO: usize = 1;
const PKG_PATHS: usize = 2;
const PKG_SCRIPTS: usize = 3;
const PKG_MAX: usize = 6;

const NDX_DESCRIPTION: usize = 1;
const NDX_PACKAGES: usize = 2;
const NDX_MAX: usize = 4;

const DEP_NAME: usize = 1;
const DEP_VERSION: usize = 2;
const DEP_MATCH: usize = 3;
const DEP_MAX: usize = 4;

/// Version match bits (src/apk_version.h); EQUAL alone is the default and
/// not written.
const VERSION_EQUAL: u64 = 1;
const VERSION_LESS: u64 = 2;
const VERSION_GREATER: u64 = 4;

/// Length of the unique id mkpkg stores in a package's pkginfo `hashes`.
const UNIQUE_ID_LEN: usize = 20;
const S_IFLNK: u16 = 0o120000;

/// A slot vector for an object with `max` fields (1-based, slot 0 unused).
struct Fields(Vec<u32>);

impl Fields {
    fn new(max: usize) -> Self {
        Fields(vec![NULL; max])
    }
    fn set(&mut self, field: usize, value: u32) -> &mut Self {
        self.0[field] = value;
        self
    }
    fn write(&self, adb: &mut Adb) -> u32 {
        adb.object(&self.0[1..])
    }
}

/// One dependency as apk stores it: name, version and match operator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub name: String,
    pub version: Option<String>,
    pub op: u64,
}

/// Parse an opkg-style dependency ("name" or "name (>=version)").
pub fn parse_dependency(text: &str) -> Option<Dependency> {
    let (name, constraint) = match text.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.strip_suffix(')')?.trim())),
        None => (text.trim(), None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let Some(constraint) = constraint else {
        return Some(Dependency {
            name: name.to_owned(),
            version: None,
            op: VERSION_EQUAL,
        });
    };
    let (op, version) = [
        (">=", VERSION_GREATER | VERSION_EQUAL),
        ("<=", VERSION_LESS | VERSION_EQUAL),
        (">>", VERSION_GREATER),
        ("<<", VERSION_LESS),
        ("=", VERSION_EQUAL),
        (">", VERSION_GREATER),
        ("<", VERSION_LESS),
    ]
    .iter()
    .find_map(|(text, op)| constraint.strip_prefix(text).map(|v| (*op, v.trim())))?;
    if version.is_empty() {
        return None;
    }
    Some(Dependency {
        name: name.to_owned(),
        version: Some(version.to_owned()),
        op,
    })
}

/// Whether `version` is an apk version (apk_version_validate, simplified
/// to what OpenWrt uses): digits separated by dots, an optional letter,
/// optional `_suffix[digits]`, optional `-r<digits>`.
pub fn valid_version(version: &str) -> bool {
    let (main, release) = match version.split_once("-r") {
        Some((main, r)) => (main, Some(r)),
        None => (version, None),
    };
    if release.is_some_and(|r| r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let (numbers, suffixes) = match main.split_once('_') {
        Some((n, s)) => (n, Some(s)),
        None => (main, None),
    };
    let numbers = numbers
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .unwrap_or(numbers);
    let numbers_ok = numbers
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    let suffixes_ok = suffixes.is_none_or(|s| {
        s.split('_').all(|suffix| {
            let word = suffix.trim_end_matches(|c: char| c.is_ascii_digit());
            ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"].contains(&word)
        })
    });
    numbers_ok && suffixes_ok
}

/// The pkginfo of one package, as both the package and the index carry it.
#[derive(Debug, Clone)]
pub struct PkgInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub arch: String,
    pub license: String,
    pub origin: String,
    pub url: Option<String>,
    pub installed_size: u64,
    pub depends: Vec<Dependency>,
    pub provides: Vec<Dependency>,
}

fn dependencies(adb: &mut Adb, deps: &[Dependency]) -> u32 {
    // schema_dependency_array's pre_commit: sorted, duplicates removed.
    let mut deps = deps.to_vec();
    deps.sort();
    deps.dedup();
    let items: Vec<u32> = deps
        .iter()
        .map(|dep| {
            let mut fields = Fields::new(DEP_MAX);
            let name = adb.blob(dep.name.as_bytes());
            fields.set(DEP_NAME, name);
            if let Some(version) = &dep.version {
                let version = adb.blob(version.as_bytes());
                fields.set(DEP_VERSION, version);
                if dep.op != VERSION_EQUAL {
                    let op = adb.int(dep.op);
                    fields.set(DEP_MATCH, op);
                }
            }
            fields.write(adb)
        })
        .collect();
    adb.array(&items)
}

/// Write a pkginfo object; `hashes` and `file_size` differ between the
/// package (unique id, no size) and the index (ADB hash, file size).
fn write_pkginfo(adb: &mut Adb, info: &PkgInfo, hashes: &[u8], file_size: Option<u64>) -> u32 {
    let mut f = Fields::new(PI_MAX);
    let strings = [
        (PI_NAME, info.name.as_str()),
        (PI_VERSION, info.version.as_str()),
        (PI_DESCRIPTION, info.description.as_str()),
        (PI_ARCH, info.arch.as_str()),
        (PI_LICENSE, info.license.as_str()),
        (PI_ORIGIN, info.origin.as_str()),
        (PI_URL, info.url.as_deref().unwrap_or("")),
    ];
    for (field, text) in strings {
        let value = adb.blob(text.as_bytes());
        f.set(field, value);
    }
    let hashes = adb.blob(hashes);
    let installed = adb.int(info.installed_size);
    let depends = dependencies(adb, &info.depends);
    let provides = dependencies(adb, &info.provides);
    f.set(PI_HASHES, hashes)
        .set(PI_INSTALLED_SIZE, installed)
        .set(PI_DEPENDS, depends)
        .set(PI_PROVIDES, provides);
    if let Some(size) = file_size {
        let size = adb.int(size);
        f.set(PI_FILE_SIZE, size);
    }
    f.write(adb)
}

/// OpenWrt's apk maintainer scripts (include/package-pack.mk): they export
/// the package name and defer to base-files' default_postinst /
/// default_prerm, as the .ipk's postinst/prerm do; nothing runs while an
/// image is assembled (IPKG_NO_SCRIPT) or without /lib/functions.sh.
pub fn post_install(package: &str) -> String {
    format!(
        "#!/bin/sh\n[ \"${{IPKG_NO_SCRIPT}}\" = \"1\" ] && exit 0\n[ -s ${{IPKG_INSTROOT}}/lib/functions.sh ] || exit 0\n. ${{IPKG_INSTROOT}}/lib/functions.sh\nexport root=\"${{IPKG_INSTROOT}}\"\nexport pkgname=\"{package}\"\nadd_group_and_user\ndefault_postinst\n"
    )
}

/// post-upgrade: post-install with PKG_UPGRADE=1, as OpenWrt writes it.
pub fn post_upgrade(package: &str) -> String {
    post_install(package).replacen("export root=", "export PKG_UPGRADE=1\nexport root=", 1)
}

pub fn pre_deinstall(package: &str) -> String {
    format!(
        "#!/bin/sh\n[ -s ${{IPKG_INSTROOT}}/lib/functions.sh ] || exit 0\n. ${{IPKG_INSTROOT}}/lib/functions.sh\nexport root=\"${{IPKG_INSTROOT}}\"\nexport pkgname=\"{package}\"\ndefault_prerm\n"
    )
}

/// The package's files plus OpenWrt's apk metadata: its conffiles list
/// (`/lib/apk/packages/<name>.conffiles`) and `.conffiles_static` (each
/// conffile with the SHA-256 it ships with, for sysupgrade/apk to tell
/// changed configuration from pristine).
fn apk_tree(spec: &PackageSpec) -> Tree {
    let mut tree = spec.data.clone();
    if spec.conffiles.is_empty() {
        return tree;
    }
    let name = &spec.control.package;
    let list: String = spec.conffiles.iter().map(|c| format!("{c}\n")).collect();
    let contents: BTreeMap<&str, &[u8]> = spec
        .data
        .nodes()
        .filter_map(|(path, node)| match node {
            Node::File { contents, .. } => Some((path.as_str(), contents.as_slice())),
            _ => None,
        })
        .collect();
    let statics: String = spec
        .conffiles
        .iter()
        .filter_map(|c| {
            contents
                .get(c.trim_start_matches('/'))
                .map(|bytes| format!("{c} {}\n", hex::encode(Sha256::digest(bytes))))
        })
        .collect();
    tree.file(&format!("/lib/apk/packages/{name}.conffiles"), 0o644, list)
        .file(
            &format!("/lib/apk/packages/{name}.conffiles_static"),
            0o644,
            statics,
        );
    tree
}

/// One directory of the package: its files by name.
#[derive(Default)]
struct Dir<'a> {
    files: BTreeMap<&'a str, &'a Node>,
}

/// A built package.
pub struct BuiltApk {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub info: PkgInfo,
    /// SHA-256 of the package's ADB block: its identity in the index.
    pub identity: [u8; 32],
}

/// Build the .apk of `spec`, signed with `key` if given (as `apk mkpkg
/// --sign`): the index's hashes already cover unsigned packages, a
/// signature lets `apk add ./file.apk` and `apk verify` trust one alone.
pub fn build(spec: &PackageSpec, key: Option<&ApkKey>) -> Result<BuiltApk, ApkError> {
    let control = &spec.control;
    let package = control.package.clone();
    if !valid_version(&control.version) {
        return Err(ApkError::Invalid {
            package,
            reason: format!("{} is not an apk version", control.version),
        });
    }
    let depends = control
        .depends
        .iter()
        .map(|d| {
            parse_dependency(d).ok_or_else(|| ApkError::Invalid {
                package: package.clone(),
                reason: format!("dependency {d:?}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let tree = apk_tree(spec);
    // Directories by name ("" is the root), as mkpkg walks them; every
    // directory is listed (with mode 0755 root:root), files under their
    // parent, both sorted bytewise (schema_dir_array / schema_file_array
    // pre_commit).
    let mut dirs: BTreeMap<&str, Dir> = BTreeMap::new();
    let mut installed_size = 0u64;
    for (path, node) in tree.nodes() {
        match node {
            Node::Dir => {
                dirs.entry(path.as_str()).or_default();
            }
            _ => {
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
                dirs.entry(parent).or_default().files.insert(name, node);
                if let Node::File { contents, .. } = node {
                    installed_size += contents.len() as u64;
                }
            }
        }
    }
    // mkpkg: an empty package still claims one byte.
    let installed_size = installed_size.max(1);

    let info = PkgInfo {
        name: package.clone(),
        version: control.version.clone(),
        description: control.description.clone(),
        arch: control.architecture.clone(),
        license: control.license.clone(),
        origin: control.source.clone(),
        url: None,
        installed_size,
        depends,
        provides: Vec::new(),
    };

    let mut adb = Adb::new();
    let pkginfo = write_pkginfo(&mut adb, &info, &[0u8; UNIQUE_ID_LEN], None);
    // The unique id's bytes follow the BLOB_8 length byte; patched below.
    let id_at = locate_unique_id(&adb, pkginfo);

    let mut data: Vec<(u32, u32, &[u8])> = Vec::new();
    let mut paths = Vec::new();
    for (dir_index, (dir_name, dir)) in dirs.iter().enumerate() {
        let mut files = Vec::new();
        for (file_index, (name, node)) in dir.files.iter().enumerate() {
            let mut f = Fields::new(FI_MAX);
            let name_v = adb.blob(name.as_bytes());
            let (mode, size, hash, target) = match node {
                Node::File { mode, contents } => {
                    if !contents.is_empty() {
                        data.push((dir_index as u32 + 1, file_index as u32 + 1, contents));
                    }
                    let hash = Sha256::digest(contents).to_vec();
                    (*mode & 0o7777, contents.len() as u64, hash, Vec::new())
                }
                Node::Symlink { target } => {
                    let mut t = S_IFLNK.to_le_bytes().to_vec();
                    t.extend_from_slice(target.as_bytes());
                    (0o777, target.len() as u64, Vec::new(), t)
                }
                Node::Dir => unreachable!("directories are not files"),
            };
            let acl = acl(&mut adb, mode);
            let size = adb.int(size);
            let mtime = adb.int(MTIME);
            let hash = adb.blob(&hash);
            let target = adb.blob(&target);
            f.set(FI_NAME, name_v)
                .set(FI_ACL, acl)
                .set(FI_SIZE, size)
                .set(FI_MTIME, mtime)
                .set(FI_HASHES, hash)
                .set(FI_TARGET, target);
            files.push(f.write(&mut adb));
        }
        let mut d = Fields::new(DI_MAX);
        let name = adb.blob(dir_name.as_bytes());
        let acl = acl(&mut adb, 0o755);
        let files = adb.array(&files);
        d.set(DI_NAME, name).set(DI_ACL, acl).set(DI_FILES, files);
        paths.push(d.write(&mut adb));
    }
    let paths = adb.array(&paths);

    let mut scripts = Fields::new(SCRPT_MAX);
    for (field, text) in [
        (SCRPT_POSTINST, post_install(&package)),
        (SCRPT_PREDEINST, pre_deinstall(&package)),
        (SCRPT_POSTUPGRADE, post_upgrade(&package)),
    ] {
        let value = adb.blob(text.as_bytes());
        scripts.set(field, value);
    }
    let scripts = scripts.write(&mut adb);

    let mut root = Fields::new(PKG_MAX);
    root.set(PKG_PKGINFO, pkginfo)
        .set(PKG_PATHS, paths)
        .set(PKG_SCRIPTS, scripts);
    let root = root.write(&mut adb);
    let mut block = adb.finish(root).context(EncodeSnafu {
        package: package.clone(),
    })?;
    let unique = Sha256::digest(&block);
    block[id_at..id_at + UNIQUE_ID_LEN].copy_from_slice(&unique[..UNIQUE_ID_LEN]);
    let identity: [u8; 32] = Sha256::digest(&block).into();
    let signatures = match key {
        Some(key) => vec![key.sign(SCHEMA_PACKAGE, &block).context(SignPackageSnafu {
            package: package.clone(),
        })?],
        None => Vec::new(),
    };

    let file = adb::container(SCHEMA_PACKAGE, &block, &signatures, &data)
        .and_then(|c| adb::deflate(&c))
        .context(EncodeSnafu {
            package: package.clone(),
        })?;
    Ok(BuiltApk {
        // apk's default pkgname-spec: ${name}-${version}.apk
        file_name: format!("{}-{}.apk", info.name, info.version),
        bytes: file,
        info,
        identity,
    })
}

fn acl(adb: &mut Adb, mode: u32) -> u32 {
    let mut acl = Fields::new(ACL_MAX);
    let mode = adb.int(u64::from(mode));
    let root = adb.blob(b"root");
    acl.set(ACL_MODE, mode)
        .set(ACL_USER, root)
        .set(ACL_GROUP, root);
    acl.write(adb)
}

/// Offset of the unique id bytes of the pkginfo object at `pkginfo`.
fn locate_unique_id(adb: &Adb, pkginfo: u32) -> usize {
    let slot = (pkginfo & adb::VALUE_MASK) as usize + 4 * PI_HASHES;
    let value = adb.read_u32(slot);
    (value & adb::VALUE_MASK) as usize + 1
}

/// Write the index over `built` packages, signed with `key` if given.
pub fn index(
    built: &[BuiltApk],
    description: &str,
    key: Option<&ApkKey>,
) -> Result<Vec<u8>, ApkError> {
    let mut adb = Adb::new();
    // schema_pkginfo_array's pre_commit sorts by name (then version, hash).
    let mut order: Vec<&BuiltApk> = built.iter().collect();
    order.sort_by(|a, b| a.info.name.as_bytes().cmp(b.info.name.as_bytes()));
    let items: Vec<u32> = order
        .iter()
        .map(|p| write_pkginfo(&mut adb, &p.info, &p.identity, Some(p.bytes.len() as u64)))
        .collect();
    let packages = adb.array(&items);
    let mut root = Fields::new(NDX_MAX);
    let description = adb.blob(description.as_bytes());
    root.set(NDX_DESCRIPTION, description)
        .set(NDX_PACKAGES, packages);
    let root = root.write(&mut adb);
    let block = adb.finish(root).context(IndexSnafu)?;
    let signatures = match key {
        Some(key) => vec![key.sign(SCHEMA_INDEX, &block).context(SignIndexSnafu)?],
        None => Vec::new(),
    };
    adb::container(SCHEMA_INDEX, &block, &signatures, &[])
        .and_then(|c| adb::deflate(&c))
        .context(IndexSnafu)
}

/// What `write` produced.
pub struct ApkSummary {
    pub files: Vec<(String, u64)>,
    pub public_key: Option<String>,
}

/// Write every package, `packages.adb` and (given a key, which then signs
/// the index and every package) the public key into `out`.
pub fn write(
    out: &Path,
    specs: &[PackageSpec],
    description: &str,
    key: Option<&ApkKey>,
) -> Result<ApkSummary, ApkError> {
    std::fs::create_dir_all(out).context(WriteApkSnafu { path: out })?;
    let built = specs
        .iter()
        .map(|spec| build(spec, key))
        .collect::<Result<Vec<_>, _>>()?;
    let mut files = Vec::new();
    for package in &built {
        let path = out.join(&package.file_name);
        std::fs::write(&path, &package.bytes).context(WriteApkSnafu { path: &path })?;
        files.push((package.file_name.clone(), package.bytes.len() as u64));
    }
    let index_path = out.join("packages.adb");
    let index = index(&built, description, key)?;
    std::fs::write(&index_path, &index).context(WriteApkSnafu { path: &index_path })?;
    files.push(("packages.adb".to_owned(), index.len() as u64));
    let public_key = match key {
        Some(key) => {
            let name = key.public_file_name();
            let path = out.join(&name);
            let pem = key.public_pem().context(SignIndexSnafu)?;
            std::fs::write(&path, pem).context(WriteApkSnafu { path: &path })?;
            Some(name)
        }
        None => None,
    };
    Ok(ApkSummary { files, public_key })
}

#[cfg(test)]
mod tests {
    use super::adb::tests::{root, Value};
    use super::*;
    use crate::catalog;

    fn inflate(file: &[u8]) -> Vec<u8> {
        assert_eq!(&file[..4], b"ADBd");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(&file[4..]), &mut out)
            .unwrap();
        out
    }

    /// The ADB block of an uncompressed file.
    fn adb_block(file: &[u8]) -> Vec<u8> {
        let tag = u32::from_le_bytes(file[8..12].try_into().unwrap());
        assert_eq!(tag >> 30, 0, "first block is ADB");
        file[12..8 + (tag & 0x3fff_ffff) as usize].to_vec()
    }

    fn field(obj: &Value, i: usize) -> &Value {
        match obj {
            Value::Object(fields) => fields.get(i - 1).unwrap_or(&Value::Null),
            other => panic!("not an object: {other:?}"),
        }
    }

    fn blob(v: &Value) -> &[u8] {
        match v {
            Value::Blob(b) => b,
            other => panic!("not a blob: {other:?}"),
        }
    }

    #[test]
    fn dependencies_parse_like_apk() {
        assert_eq!(
            parse_dependency("besip-box (=0.1.0)"),
            Some(Dependency {
                name: "besip-box".into(),
                version: Some("0.1.0".into()),
                op: VERSION_EQUAL
            })
        );
        assert_eq!(parse_dependency("ipset").unwrap().version, None);
        assert_eq!(parse_dependency("x (>=2)").unwrap().op, 5);
        assert_eq!(parse_dependency("x (=)"), None);
        assert!(valid_version("0.1.0"));
        assert!(valid_version("1.2.3-r1"));
        assert!(valid_version("2.0_rc1"));
        assert!(!valid_version("1..2"));
        assert!(!valid_version("v1"));
    }

    #[test]
    fn a_package_round_trips_with_its_unique_id_and_data() {
        let specs = catalog::packages("0.1.0", "x86_64", b"\x7fELF box".to_vec());
        let spec = specs
            .iter()
            .find(|s| s.control.package == "besip-pbxd")
            .unwrap();
        let built = build(spec, None).unwrap();
        let file = inflate(&built.bytes);
        assert_eq!(&file[..8], b"ADB.pckg");
        let block = adb_block(&file);
        assert_eq!(built.identity, <[u8; 32]>::from(Sha256::digest(&block)));
        let pkg = root(&block);
        let info = field(&pkg, PKG_PKGINFO);
        assert_eq!(blob(field(info, PI_NAME)), b"besip-pbxd");
        assert_eq!(blob(field(info, PI_ARCH)), b"x86_64");
        // The unique id: SHA-256 of the block with the id zeroed.
        let id = blob(field(info, PI_HASHES)).to_vec();
        let at = block.windows(UNIQUE_ID_LEN).position(|w| w == id).unwrap();
        let mut zeroed = block.clone();
        zeroed[at..at + UNIQUE_ID_LEN].fill(0);
        assert_eq!(&Sha256::digest(&zeroed)[..UNIQUE_ID_LEN], &id[..]);
        // besip-box (=0.1.0) sorts before besip-netconfd: no match field.
        let Value::Array(deps) = field(info, PI_DEPENDS) else {
            panic!("no depends")
        };
        assert_eq!(blob(field(&deps[0], DEP_NAME)), b"besip-box");
        assert_eq!(blob(field(&deps[0], DEP_VERSION)), b"0.1.0");
        assert_eq!(field(&deps[0], DEP_MATCH), &Value::Null);
        // Directories sorted, the init script under etc/init.d with 0755.
        let Value::Array(paths) = field(&pkg, PKG_PATHS) else {
            panic!("no paths")
        };
        let names: Vec<&[u8]> = paths.iter().map(|p| blob(field(p, DI_NAME))).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let init = paths
            .iter()
            .position(|p| blob(field(p, DI_NAME)) == b"etc/init.d")
            .unwrap();
        let Value::Array(files) = field(&paths[init], DI_FILES) else {
            panic!("no files")
        };
        assert_eq!(blob(field(&files[0], FI_NAME)), b"besip-pbxd");
        assert_eq!(
            field(field(&files[0], FI_ACL), ACL_MODE),
            &Value::Int(0o755)
        );
        // Its DATA block carries path and file index (1-based) and the bytes.
        let mut at =
            8 + (u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize).next_multiple_of(8);
        let mut found = false;
        while at < file.len() {
            let tag = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
            let len = (tag & 0x3fff_ffff) as usize;
            assert_eq!(tag >> 30, 2, "only DATA blocks follow an unsigned package");
            let path_idx = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap());
            let file_idx = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap());
            if path_idx as usize == init + 1 && file_idx == 1 {
                let bytes = &file[at + 12..at + len];
                assert_eq!(
                    blob(field(&files[0], FI_HASHES)),
                    &Sha256::digest(bytes)[..]
                );
                found = true;
            }
            at += len.next_multiple_of(8);
        }
        assert!(found, "no DATA block for the init script");
    }

    #[test]
    fn a_signed_package_keeps_its_adb_block_and_puts_the_signature_before_data() {
        let specs = catalog::packages("0.1.0", "x86_64", b"box".to_vec());
        let key = ApkKey::generate();
        let unsigned = build(&specs[0], None).unwrap();
        let signed = build(&specs[0], Some(&key)).unwrap();
        assert_eq!(unsigned.identity, signed.identity);
        let file = inflate(&signed.bytes);
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < file.len() {
            let tag = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
            kinds.push(tag >> 30);
            if tag >> 30 == 1 {
                assert_eq!(&file[at + 6..at + 22], &key.key_id());
            }
            at += ((tag & 0x3fff_ffff) as usize).next_multiple_of(8);
        }
        assert_eq!(kinds[..2], [0, 1]);
        assert!(kinds[2..].iter().all(|k| *k == 2) && kinds.len() > 2);
    }

    #[test]
    fn index_lists_packages_by_name_with_hash_and_size_and_is_signed() {
        let specs = catalog::packages("0.1.0", "x86_64", b"box".to_vec());
        let built: Vec<_> = specs.iter().map(|s| build(s, None).unwrap()).collect();
        let key = ApkKey::generate();
        let file = inflate(&index(&built, "test", Some(&key)).unwrap());
        assert_eq!(&file[..8], b"ADB.indx");
        let block = adb_block(&file);
        let ndx = root(&block);
        let Value::Array(pkgs) = field(&ndx, NDX_PACKAGES) else {
            panic!("no packages")
        };
        assert_eq!(pkgs.len(), built.len());
        let names: Vec<&[u8]> = pkgs.iter().map(|p| blob(field(p, PI_NAME))).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for p in pkgs {
            let b = built
                .iter()
                .find(|b| b.info.name.as_bytes() == blob(field(p, PI_NAME)))
                .unwrap();
            assert_eq!(blob(field(p, PI_HASHES)), &b.identity);
            assert_eq!(field(p, PI_FILE_SIZE), &Value::Int(b.bytes.len() as u64));
        }
        // One SIG block after the ADB block, naming the key.
        let at = 8 + (block.len() + 4).next_multiple_of(8);
        let tag = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
        assert_eq!(tag >> 30, 1);
        assert_eq!(&file[at + 6..at + 22], &key.key_id());
    }
}
