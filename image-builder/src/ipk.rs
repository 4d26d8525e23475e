//! `.ipk` archives exactly as OpenWrt's `scripts/ipkg-build` makes them: a
//! gzip'd GNU tar of `./debian-binary` ("2.0"), `./data.tar.gz` and
//! `./control.tar.gz`; members named with a leading `./`, owner 0/0, one fixed
//! mtime, entries sorted by name (`tar --sort=name`), gzip without a name or
//! time (`gzip -n`). As in ipkg-build, `Installed-Size` is the byte size of
//! data.tar.gz.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// The mtime of every member (ipkg-build uses SOURCE_DATE_EPOCH); fixed so
/// two builds of the same input are byte-identical.
pub const MTIME: u64 = 1_700_000_000;

/// One entry of a package's file tree, keyed by its path without the `./`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { mode: u32, contents: Vec<u8> },
    Symlink { target: String },
}

/// A file tree: path ("usr/bin/x") → node. Parent directories are implied.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn file(&mut self, path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.add(
            path,
            Node::File {
                mode,
                contents: contents.into(),
            },
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        )
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.add(path, Node::Dir)
    }

    fn add(&mut self, path: &str, node: Node) -> &mut Self {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let mut parent = String::new();
        for component in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            self.nodes.entry(parent.clone()).or_insert(Node::Dir);
        }
        self.nodes.insert(path.to_owned(), node);
        self
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Merge another tree into this one (later entries win).
    pub fn merge(&mut self, other: &Tree) {
        for (path, node) in &other.nodes {
            self.nodes.insert(path.clone(), node.clone());
        }
    }

    /// Sum of the regular files' sizes (for the size figures).
    pub fn file_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File { contents, .. } => contents.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

/// Order of `tar --sort=name`: by path component, so "a/b" sorts before "a.b".
fn tar_order(tree: &Tree) -> Vec<(&String, &Node)> {
    let mut entries: Vec<_> = tree.nodes().collect();
    entries.sort_by(|(a, _), (b, _)| a.split('/').cmp(b.split('/')));
    entries
}

/// A gzip'd GNU tar of `tree`, rooted at "./" as `tar -C dir -cf - .` writes it.
pub fn tar_gz(tree: &Tree) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    append(&mut builder, "./", &Node::Dir)?;
    for (path, node) in tar_order(tree) {
        let name = match node {
            Node::Dir => format!("./{path}/"),
            _ => format!("./{path}"),
        };
        append(&mut builder, &name, node)?;
    }
    gzip(&builder.into_inner()?)
}

/// gzip as `gzip -n`: no file name, no timestamp, maximum compression.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data)?;
    encoder.finish()
}

fn append(builder: &mut tar::Builder<Vec<u8>>, name: &str, node: &Node) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    let data: &[u8] = match node {
        Node::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            &[]
        }
        Node::File { mode, contents } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_size(contents.len() as u64);
            contents
        }
        Node::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            header.set_link_name(target)?;
            &[]
        }
    };
    // The tar crate normalises "./x" to "x"; ipkg-build's members keep the
    // "./", so the name field is written directly (all our names are short).
    let bytes = name.as_bytes();
    if bytes.len() >= 100 {
        return Err(std::io::Error::other(format!(
            "member name too long for a ustar header: {name}"
        )));
    }
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
    header.set_cksum();
    builder.append(&header, data)
}

/// Control metadata of one package, in the field order OpenWrt's
/// package-ipkg.mk writes.
#[derive(Debug, Clone)]
pub struct Control {
    pub package: String,
    pub version: String,
    pub depends: Vec<String>,
    pub source: String,
    pub license: String,
    pub section: String,
    pub architecture: String,
    pub description: String,
}

impl Control {
    /// The `control` file text with Installed-Size filled in.
    pub fn render(&self, installed_size: u64) -> String {
        let mut text = format!("Package: {}\nVersion: {}\n", self.package, self.version);
        if !self.depends.is_empty() {
            text.push_str(&format!("Depends: {}\n", self.depends.join(", ")));
        }
        text.push_str(&format!(
            "Source: {}\nSourceName: {}\nLicense: {}\nSection: {}\nArchitecture: {}\nInstalled-Size: {}\nDescription: {}\n",
            self.source,
            self.package,
            self.license,
            self.section,
            self.architecture,
            installed_size,
            self.description.replace('\n', "\n "),
        ));
        text
    }
}

/// The maintainer scripts OpenWrt generates for every package: they defer to
/// default_postinst/default_prerm of base-files' /lib/functions.sh (which
/// run the package's uci-defaults and enable/start or stop/disable its
/// init scripts; nothing runs while building an image into IPKG_INSTROOT).
pub const POSTINST: &str = "#!/bin/sh\n[ \"${IPKG_NO_SCRIPT}\" = \"1\" ] && exit 0\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n. ${IPKG_INSTROOT}/lib/functions.sh\ndefault_postinst $0 $@\n";
pub const PRERM: &str = "#!/bin/sh\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n. ${IPKG_INSTROOT}/lib/functions.sh\ndefault_prerm $0 $@\n";

/// A built package: its control text (for the feed index) and .ipk bytes.
pub struct Built {
    pub control: String,
    pub ipk: Vec<u8>,
}

/// Build the .ipk of `control` with `data` as its files and `conffiles`
/// (absolute paths of files in `data` opkg keeps when the user changed them).
pub fn build(control: &Control, data: &Tree, conffiles: &[String]) -> std::io::Result<Built> {
    let data_tar = tar_gz(data)?;
    let control_text = control.render(data_tar.len() as u64);
    let mut control_tree = Tree::default();
    control_tree.file("control", 0o644, control_text.clone());
    if !conffiles.is_empty() {
        let list: String = conffiles.iter().map(|c| format!("{c}\n")).collect();
        control_tree.file("conffiles", 0o644, list);
    }
    control_tree.file("postinst", 0o755, POSTINST);
    control_tree.file("prerm", 0o755, PRERM);
    let control_tar = tar_gz(&control_tree)?;

    let mut outer = tar::Builder::new(Vec::new());
    for (name, contents) in [
        ("./debian-binary", b"2.0\n".to_vec()),
        ("./data.tar.gz", data_tar),
        ("./control.tar.gz", control_tar),
    ] {
        append(
            &mut outer,
            name,
            &Node::File {
                mode: 0o644,
                contents,
            },
        )?;
    }
    Ok(Built {
        control: control_text,
        ipk: gzip(&outer.into_inner()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_implied_and_sorted_like_gnu_tar() {
        let mut tree = Tree::default();
        tree.file("etc/init.d/x", 0o755, "a")
            .file("etc/config/y", 0o644, "b");
        let order: Vec<_> = tar_order(&tree)
            .into_iter()
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "etc",
                "etc/config",
                "etc/config/y",
                "etc/init.d",
                "etc/init.d/x"
            ]
        );
    }

    #[test]
    fn same_input_gives_identical_bytes() {
        let control = Control {
            package: "p".into(),
            version: "1".into(),
            depends: vec![],
            source: "s".into(),
            license: "l".into(),
            section: "net".into(),
            architecture: "x86_64".into(),
            description: "d".into(),
        };
        let mut tree = Tree::default();
        tree.file("usr/bin/p", 0o755, "x");
        let a = build(&control, &tree, &[]).unwrap().ipk;
        let b = build(&control, &tree, &[]).unwrap().ipk;
        assert_eq!(a, b);
    }
}
