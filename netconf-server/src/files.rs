//! `file://` URLs of the `:url` capability (copy-config, edit-config,
//! delete-config), confined to one directory: besip-system
//! `netconf/files-directory`, under `--root` in development. A URL naming
//! anything outside it (`..`, a symbolic link that leads out, another
//! absolute path) is refused with `invalid-value` before anything is read,
//! written or deleted.

use crate::nacm_ops::normalize_nacm_paths;
use crate::rpc::{bad_value, url_path};
use crate::session::SessionCtx;
use besip_core::datastore::{Datastore, Source, WithDefaults};
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::filter::Filter;
use besip_core::xml::Element;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use besip_core::model::system::NAMESPACE as SYSTEM_NS;

/// The YANG default of `files-directory`, for a running tree that lacks it.
const FALLBACK_DIRECTORY: &str = "/var/lib/besip/files";

/// The configured directory as the box names it (`/var/lib/besip/files`).
fn configured_directory(store: &Datastore) -> String {
    let filter = Filter::XPath {
        select: "/s:system/s:netconf/s:files-directory".into(),
        namespaces: vec![("s".into(), SYSTEM_NS.into())],
    };
    let found = store
        .get_config(Source::Running, &filter, WithDefaults::ReportAll)
        .ok()
        .and_then(|xml| besip_core::xml::parse(&xml).ok())
        .and_then(|roots| {
            let system = roots.into_iter().find(|e| e.name == "system")?;
            let netconf = system.child("netconf")?;
            let dir = netconf.child("files-directory")?;
            Some(dir.trimmed_text().to_owned())
        });
    found.unwrap_or_else(|| FALLBACK_DIRECTORY.to_owned())
}

/// The directory file URLs may name, on this server's file tree.
pub async fn files_directory(ctx: &SessionCtx) -> PathBuf {
    let configured = configured_directory(&*ctx.server.store.lock().await);
    ctx.server
        .layout
        .root()
        .join(configured.trim_start_matches('/'))
}

/// The local file a URL names, if it lies inside the files directory.
pub async fn resolve(ctx: &SessionCtx, url: &str) -> Result<PathBuf, ConfigError> {
    confine(&files_directory(ctx).await, url)
}

/// `url` as a path inside `dir` (created if missing), symbolic links resolved.
pub fn confine(dir: &Path, url: &str) -> Result<PathBuf, ConfigError> {
    let requested = url_path(url)?;
    let outside = || {
        bad_value(
            "url",
            format!(
                "'{url}' is outside {}: file URLs may name files in that directory only \
                 (besip-system netconf/files-directory)",
                dir.display()
            ),
        )
    };
    let failed = |e: std::io::Error| {
        ConfigError::new(
            ErrorTag::OperationFailed,
            format!("cannot use the files directory {}: {e}", dir.display()),
        )
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    let base = dir.canonicalize().map_err(failed)?;
    let (Some(parent), Some(name)) = (requested.parent(), requested.file_name()) else {
        return Err(outside());
    };
    // A parent that does not exist cannot be inside (it would be created
    // nowhere); one that exists is compared with its links resolved.
    let parent = parent.canonicalize().map_err(|_| outside())?;
    if !parent.starts_with(&base) {
        return Err(outside());
    }
    let path = parent.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = path.canonicalize().map_err(|_| outside())?;
            if !target.starts_with(&base) || target == base {
                return Err(outside());
            }
            Ok(target)
        }
        Ok(meta) if meta.is_dir() => Err(bad_value(
            "url",
            format!("'{url}' names a directory, not a file"),
        )),
        _ => Ok(path),
    }
}

/// The `<config>` content of a file (export format: `<config>` wrapper or bare).
pub fn read_config(path: &Path) -> Result<Vec<Element>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            ErrorTag::OperationFailed,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut roots = besip_core::xml::parse(&text).map_err(|e| {
        ConfigError::new(
            ErrorTag::MalformedMessage,
            format!("{}: {e}", path.display()),
        )
    })?;
    normalize_nacm_paths(&mut roots, &[]);
    Ok(match roots.as_slice() {
        [w] if w.name == "config" || w.name == "data" => w.children.clone(),
        _ => roots,
    })
}

/// Read the configuration a URL names, once it is confined.
pub async fn read_url_config(ctx: &SessionCtx, url: &str) -> Result<Vec<Element>, ConfigError> {
    read_config(&resolve(ctx, url).await?)
}

#[cfg(test)]
mod tests {
    use super::confine;

    #[test]
    fn urls_stay_inside_the_directory() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("files");
        let inside = confine(&dir, &format!("file://{}/a.xml", dir.display())).unwrap();
        assert_eq!(inside, dir.canonicalize().unwrap().join("a.xml"));
        let outside = scratch.path().join("secret.xml");
        std::fs::write(&outside, "x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link.xml")).unwrap();
        std::os::unix::fs::symlink(scratch.path(), dir.join("up")).unwrap();
        for url in [
            format!("file://{}", outside.display()),
            format!("file://{}/../secret.xml", dir.display()),
            format!("file://{}/link.xml", dir.display()),
            format!("file://{}/up/secret.xml", dir.display()),
            format!("file://{}/missing/a.xml", dir.display()),
            "file://etc/passwd".to_owned(),
            "http://example.com/x".to_owned(),
        ] {
            assert!(confine(&dir, &url).is_err(), "{url}");
        }
        std::fs::write(dir.join("a.xml"), "x").unwrap();
        std::os::unix::fs::symlink(dir.join("a.xml"), dir.join("ok.xml")).unwrap();
        let linked = confine(&dir, &format!("file://{}/ok.xml", dir.display())).unwrap();
        assert_eq!(linked, dir.canonicalize().unwrap().join("a.xml"));
    }
}
