//! A small namespace-aware XML element tree over quick-xml, for NETCONF
//! payloads and configuration files. DTDs are refused and no entity other than
//! the five predefined ones is expanded (no billion-laughs, no external entities).
//! Nesting is limited (trees are walked recursively elsewhere, and a deep tree
//! must not overflow the stack); callers reading from the network also limit
//! the number of elements ([`parse_limited`]).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use snafu::Snafu;

#[derive(Debug, Snafu, Clone, PartialEq)]
pub enum XmlError {
    #[snafu(display("malformed XML at line {line}: {message}"))]
    Malformed { line: usize, message: String },
    #[snafu(display("XML at line {line}: DTDs and entity declarations are not accepted"))]
    Doctype { line: usize },
    #[snafu(display("XML at line {line} is nested deeper than {limit} elements"))]
    TooDeep { line: usize, limit: usize },
    #[snafu(display("XML at line {line} has more than {limit} elements"))]
    TooManyElements { line: usize, limit: usize },
}

impl XmlError {
    /// A size limit rather than a syntax error (NETCONF answers `too-big`).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            XmlError::TooDeep { .. } | XmlError::TooManyElements { .. }
        )
    }
}

/// Deepest nesting accepted anywhere: far beyond any YANG tree this box
/// uses (an edit-config is about a dozen levels), far below a stack overflow.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    /// Namespace URI ("" when the element has none).
    pub namespace: String,
    pub name: String,
    /// Attributes as (namespace URI, local name, value).
    pub attributes: Vec<(String, String, String)>,
    /// Concatenated character data directly inside this element.
    pub text: String,
    pub children: Vec<Element>,
    /// 1-based line of the start tag.
    pub line: usize,
    /// Prefix -> namespace bindings declared on this element (for values such as identityrefs).
    pub namespace_declarations: Vec<(String, String)>,
}

impl Element {
    pub fn new(namespace: &str, name: &str) -> Self {
        Element {
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn attribute(&self, namespace: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(ns, n, _)| n == name && (ns == namespace || namespace == "*"))
            .map(|(_, _, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_ns(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name == name && c.namespace == namespace)
    }

    /// Text with surrounding white space removed.
    pub fn trimmed_text(&self) -> &str {
        self.text.trim()
    }

    /// Serialize (used to hand sub-trees around, e.g. `<config>` content).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out, None);
        out
    }

    fn write_xml(&self, out: &mut String, parent_ns: Option<&str>) {
        out.push('<');
        out.push_str(&self.name);
        if parent_ns != Some(self.namespace.as_str()) {
            out.push_str(" xmlns=\"");
            out.push_str(&escape(&self.namespace));
            out.push('"');
        }
        for (i, (ns, name, value)) in self.attributes.iter().enumerate() {
            if ns.is_empty() {
                out.push_str(&format!(" {name}=\"{}\"", escape(value)));
            } else {
                out.push_str(&format!(
                    " xmlns:a{i}=\"{}\" a{i}:{name}=\"{}\"",
                    escape(ns),
                    escape(value)
                ));
            }
        }
        for (prefix, ns) in &self.namespace_declarations {
            if !prefix.is_empty()
                && !self
                    .attributes
                    .iter()
                    .enumerate()
                    .any(|(i, _)| *prefix == format!("a{i}"))
            {
                out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(ns)));
            }
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for child in &self.children {
            child.write_xml(out, Some(&self.namespace));
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escape text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

fn line_of(input: &str, byte_pos: usize) -> usize {
    input.as_bytes()[..byte_pos.min(input.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line numbers for monotonically increasing byte positions, in linear total time.
struct LineCounter<'a> {
    input: &'a [u8],
    position: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn line_at(&mut self, byte_pos: usize) -> usize {
        let target = byte_pos.min(self.input.len()).max(self.position);
        self.line += self.input[self.position..target]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.position = target;
        self.line
    }
}

/// Parse a document (or a fragment with several top-level elements) into elements.
pub fn parse(input: &str) -> Result<Vec<Element>, XmlError> {
    parse_limited(input, usize::MAX)
}

/// [`parse`] refusing more than `max_elements` elements (memory is about
/// 0.3 KiB per element, so a small message of `<a/>`s must not become gigabytes).
pub fn parse_limited(input: &str, max_elements: usize) -> Result<Vec<Element>, XmlError> {
    if input.contains('\0') {
        return Err(XmlError::Malformed {
            line: line_of(input, input.find('\0').unwrap_or(0)),
            message: "NUL character".into(),
        });
    }
    let mut reader = NsReader::from_str(input);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut roots = Vec::new();
    let mut lines = LineCounter {
        input: input.as_bytes(),
        position: 0,
        line: 1,
    };
    let mut elements: usize = 0;
    loop {
        let line = lines.line_at(reader.buffer_position() as usize);
        let malformed = |message: String| XmlError::Malformed { line, message };
        let (resolve, event) = reader
            .read_resolved_event()
            .map_err(|e| malformed(e.to_string()))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                elements += 1;
                if elements > max_elements {
                    return Err(XmlError::TooManyElements {
                        line,
                        limit: max_elements,
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep {
                        line,
                        limit: MAX_DEPTH,
                    });
                }
                let namespace = match resolve {
                    ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => {
                        return Err(malformed(format!(
                            "unknown namespace prefix '{}'",
                            String::from_utf8_lossy(&p)
                        )))
                    }
                };
                let mut element = Element {
                    namespace,
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    line,
                    ..Default::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| malformed(e.to_string()))?;
                    let key = attr.key;
                    let value = attr
                        .unescape_value()
                        .map_err(|e| malformed(e.to_string()))?
                        .into_owned();
                    if key.as_ref() == b"xmlns" {
                        element.namespace_declarations.push((String::new(), value));
                        continue;
                    }
                    if let Some(prefix) = key.as_ref().strip_prefix(b"xmlns:") {
                        element
                            .namespace_declarations
                            .push((String::from_utf8_lossy(prefix).into_owned(), value));
                        continue;
                    }
                    let (attr_ns, local) = reader.resolve_attribute(key);
                    let attr_ns = match attr_ns {
                        ResolveResult::Bound(ns) => {
                            String::from_utf8_lossy(ns.as_ref()).into_owned()
                        }
                        ResolveResult::Unbound => String::new(),
                        ResolveResult::Unknown(p) => {
                            return Err(malformed(format!(
                                "unknown namespace prefix '{}'",
                                String::from_utf8_lossy(&p)
                            )))
                        }
                    };
                    element.attributes.push((
                        attr_ns,
                        String::from_utf8_lossy(local.as_ref()).into_owned(),
                        value,
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => roots.push(element),
                    }
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(malformed("unexpected end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => roots.push(done),
                }
            }
            Event::Text(text) => {
                let unescaped = text.unescape().map_err(|e| {
                    malformed(format!("{e} (only the predefined entities are accepted)"))
                })?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&unescaped),
                    None if unescaped.trim().is_empty() => {}
                    None => return Err(malformed("text outside of any element".into())),
                }
            }
            Event::CData(data) => {
                let text = String::from_utf8_lossy(&data).into_owned();
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None => return Err(malformed("CDATA outside of any element".into())),
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype { line }),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Malformed {
            line: open.line,
            message: format!("element <{}> is not closed", open.name),
        });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_attributes_and_lines() {
        let doc = "<config xmlns=\"urn:a\" xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <x nc:operation=\"delete\">v &amp; w</x>\n</config>";
        let roots = parse(doc).unwrap();
        assert_eq!(roots.len(), 1);
        let x = &roots[0].children[0];
        assert_eq!(x.namespace, "urn:a");
        assert_eq!(x.text, "v & w");
        assert_eq!(x.line, 2);
        assert_eq!(
            x.attribute("urn:ietf:params:xml:ns:netconf:base:1.0", "operation"),
            Some("delete")
        );
    }

    #[test]
    fn refuses_dtd_and_custom_entities() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><a>&lol;</a>";
        assert!(matches!(parse(bomb), Err(XmlError::Doctype { .. })));
        assert!(matches!(
            parse("<a>&lol;</a>"),
            Err(XmlError::Malformed { .. })
        ));
    }

    #[test]
    fn reports_malformed_documents() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("<p:a/>").is_err());
    }

    #[test]
    fn refuses_deep_nesting_and_too_many_elements() {
        let deep = "<a>".repeat(100_000) + &"</a>".repeat(100_000);
        assert!(matches!(
            parse(&deep),
            Err(XmlError::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        ));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let flat = format!("<r>{}</r>", "<a/>".repeat(1000));
        assert!(parse_limited(&flat, 1001).is_ok());
        let err = parse_limited(&flat, 1000).unwrap_err();
        assert!(err.is_limit(), "{err}");
        assert!(matches!(err, XmlError::TooManyElements { limit: 1000, .. }));
    }

    #[test]
    fn serializes_back() {
        let roots = parse("<a xmlns=\"urn:a\"><b>1 &lt; 2</b><c xmlns=\"urn:c\"/></a>").unwrap();
        let again = parse(&roots[0].to_xml()).unwrap();
        assert_eq!(again[0].children[0].text, "1 < 2");
        assert_eq!(again[0].children[1].namespace, "urn:c");
    }
}
