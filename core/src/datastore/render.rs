//! The render stage: the trees as UCI text and XML. `Rendering` holds the
//! texts last written and the caches that let a commit re-render only the
//! entries its edits touched (render_cache.rs); reads (`<get-config>`,
//! `<get>`) print the trees with filters and with-defaults.

use super::{validation_flags, Datastore, DatastoreError, Source, WithDefaults, WriteSnafu};
use crate::edit::{DefaultOperation, Editor, ErrorOption};
use crate::error::{ConfigError, ErrorTag};
use crate::filter::{self, Filter};
use crate::render_cache::{Dirty, RenderCache};
use crate::schema::{describe, ModuleInfo, Schema};
use crate::secrets::ReadAccess;
use crate::uci_map;
use crate::xml::Element;
use snafu::ResultExt;
use std::collections::HashMap;
use yang2::data::{
    Data, DataFormat, DataParserFlags, DataPrinterFlags, DataTree, DataValidationFlags,
};

#[derive(Default)]
pub(super) struct Rendering {
    /// Text last written for each UCI package.
    rendered: HashMap<String, String>,
    renderer: uci_map::TextRenderer,
    /// Rendered top-level list entries of running (None: rebuild at the next commit).
    section_cache: Option<RenderCache>,
}

impl Rendering {
    /// The entry cache of running, for a commit that edited running in
    /// place (`reusable`); else an empty one. Put back with `keep_cache`
    /// once the commit succeeds.
    pub fn take_cache(&mut self, reusable: bool) -> RenderCache {
        match self.section_cache.take() {
            Some(cache) if reusable => cache,
            _ => RenderCache::default(),
        }
    }

    pub fn keep_cache(&mut self, cache: RenderCache) {
        self.section_cache = Some(cache);
    }

    /// Render `module`'s package from `tree`, re-rendering only `dirty`
    /// entries of `cache`: `Some((package, text))` if it differs from the
    /// text last written.
    pub fn render_changed(
        &mut self,
        tree: &DataTree<'static>,
        module: &ModuleInfo,
        cache: &mut RenderCache,
        dirty: &Dirty,
    ) -> Option<(String, String)> {
        let package = module.uci_package().unwrap_or_default();
        let sections = cache.packages.entry(package.clone()).or_default();
        let text = self.renderer.render_cached(tree, module, sections, dirty);
        (self.rendered.get(&package) != Some(&text)).then_some((package, text))
    }

    /// The text last written for each package.
    pub fn written(&self) -> &HashMap<String, String> {
        &self.rendered
    }

    pub fn record_written(&mut self, package: String, text: String) {
        self.rendered.insert(package, text);
    }
}

impl Datastore {
    /// Write every package whose text differs from the file on disk.
    pub(super) fn render_all_to_disk(&mut self) -> Result<(), DatastoreError> {
        for module in self.schema.besip_modules() {
            let package_name = module.uci_package().unwrap_or_default();
            let text = self.rendering.renderer.render(&self.running, module);
            let path = self.layout.uci_package(&package_name);
            let on_disk = std::fs::read_to_string(&path).ok();
            if on_disk.as_deref() != Some(text.as_str()) {
                crate::persist::replace_derived(&path, text.as_bytes()).context(WriteSnafu {
                    path: path.display().to_string(),
                })?;
            } else {
                crate::persist::restrict_to_owner(&path).context(WriteSnafu {
                    path: path.display().to_string(),
                })?;
            }
            self.rendering.record_written(package_name, text);
        }
        Ok(())
    }

    /// The whole datastore as XML (children of `<data>`/`<config>`).
    pub fn print(&self, source: Source, with_defaults: WithDefaults) -> String {
        print_tree(self.tree(source), with_defaults)
    }

    /// `<get-config>`: the filtered datastore as XML.
    pub fn get_config(
        &self,
        source: Source,
        filter: &Filter,
        with_defaults: WithDefaults,
    ) -> Result<String, ConfigError> {
        self.get_config_as(source, filter, with_defaults, ReadAccess::Everything)
    }

    /// `<get-config>` for a reader that may not see secrets
    /// (`nacm:default-deny-all` nodes such as password hashes).
    pub fn get_config_as(
        &self,
        source: Source,
        filter: &Filter,
        with_defaults: WithDefaults,
        access: ReadAccess,
    ) -> Result<String, ConfigError> {
        if access == ReadAccess::WithoutSecrets {
            // What the reader may not see goes first: a filter evaluated on
            // the whole tree (`starts-with(password, 'a')`) would otherwise
            // answer questions about the secrets it then hides.
            let mut tree = self
                .tree(source)
                .duplicate()
                .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
            crate::secrets::remove_secrets(&mut tree);
            if let Some(xpaths) = filter::to_xpaths(filter)? {
                tree = filter::select(&tree, &xpaths)?;
            }
            return Ok(print_tree(&tree, with_defaults));
        }
        match filter::to_xpaths(filter)? {
            None => Ok(self.print(source, with_defaults)),
            Some(xpaths) => {
                if let Some(text) = print_single_top_node(self.tree(source), &xpaths, with_defaults)
                {
                    return Ok(text);
                }
                let selected = filter::select(self.tree(source), &xpaths)?;
                Ok(print_tree(&selected, with_defaults))
            }
        }
    }

    /// `<get>`: configuration plus state. `states` are RFC 7951 JSON documents
    /// from the daemons; documents that do not fit the schema are skipped (and logged).
    pub fn get_with_state(
        &self,
        filter: &Filter,
        with_defaults: WithDefaults,
        states: &[String],
    ) -> Result<String, ConfigError> {
        self.get_with_state_as(filter, with_defaults, states, ReadAccess::Everything)
    }

    /// `<get>` for a reader that may not see secrets.
    pub fn get_with_state_as(
        &self,
        filter: &Filter,
        with_defaults: WithDefaults,
        states: &[String],
        access: ReadAccess,
    ) -> Result<String, ConfigError> {
        let mut tree = self
            .running
            .duplicate()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
        for state in states {
            // yang2 hands the bytes to lyd_parse_data_mem, which reads a C
            // string: without the NUL it reads past the end of the buffer.
            let state = format!("{state}\0");
            match DataTree::parse_string(
                self.schema.context(),
                &state,
                DataFormat::JSON,
                DataParserFlags::NO_VALIDATION,
                DataValidationFlags::empty(),
            ) {
                Ok(state_tree) => {
                    if let Err(e) = tree.merge(&state_tree) {
                        tracing::warn!(error = %describe(&e), "daemon state does not merge");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "daemon state does not fit the YANG schema")
                }
            }
        }
        if access == ReadAccess::WithoutSecrets {
            crate::secrets::remove_secrets(&mut tree);
        }
        match filter::to_xpaths(filter)? {
            None => Ok(print_tree(&tree, with_defaults)),
            Some(xpaths) => Ok(print_tree(&filter::select(&tree, &xpaths)?, with_defaults)),
        }
    }

    /// The UCI text of a module as commit writes it.
    pub fn render_text(&mut self, source: Source, module_name: &str) -> Option<String> {
        let module = self
            .schema
            .besip_modules()
            .find(|m| m.name == module_name)?;
        let tree = match source {
            Source::Running => &self.running,
            Source::Candidate => &self.candidate,
        };
        Some(self.rendering.renderer.render(tree, module))
    }

    /// Cross-check used by tests and `besip import`: the running tree rendered to UCI.
    pub fn render_package(&self, source: Source, module_name: &str) -> Option<crate::uci::Package> {
        let module = self
            .schema
            .besip_modules()
            .find(|m| m.name == module_name)?;
        Some(uci_map::render_module(self.tree(source), module))
    }
}

/// Print a tree as XML (no XML declaration; siblings included).
pub fn print_tree(tree: &DataTree<'static>, with_defaults: WithDefaults) -> String {
    if tree.reference().is_none() {
        return String::new();
    }
    tree.print_string(DataFormat::XML, with_defaults.printer_flags())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A filter that selects exactly one whole top-level node (e.g. all of /pbx)
/// is printed straight from the tree, without copying 10,000 entries first.
fn print_single_top_node(
    tree: &DataTree<'static>,
    xpaths: &[String],
    with_defaults: WithDefaults,
) -> Option<String> {
    let [xpath] = xpaths else {
        return None;
    };
    let set = tree.find_xpath(xpath).ok()?;
    let mut nodes = set.into_iter();
    let node = nodes.next()?;
    if nodes.next().is_some() || yang2::iter::NodeIterable::parent(&node).is_some() {
        return None;
    }
    let flags = with_defaults.printer_flags() - DataPrinterFlags::WITH_SIBLINGS;
    node.print_string(DataFormat::XML, flags).ok().flatten()
}

/// Parse a stored/imported configuration document (children of `<config>`, or
/// a document wrapped in `<config>`/`<data>`) into a validated tree.
pub fn parse_config_tree(
    schema: &'static Schema,
    text: &str,
) -> Result<DataTree<'static>, ConfigError> {
    let elements = crate::xml::parse(text)
        .map_err(|e| ConfigError::protocol(ErrorTag::MalformedMessage, e.to_string()))?;
    let content: Vec<Element> = match elements.as_slice() {
        [wrapper] if wrapper.name == "config" || wrapper.name == "data" => wrapper.children.clone(),
        _ => elements,
    };
    let mut tree = DataTree::new(schema.context());
    let (_, errors, _) =
        Editor::new(&mut tree, ErrorOption::StopOnError)?.apply(&content, DefaultOperation::Merge);
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    tree.validate(validation_flags())
        .map_err(|e| ConfigError::from_validation(&e))?;
    Ok(tree)
}
