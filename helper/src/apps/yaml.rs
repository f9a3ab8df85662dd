//! A YAML document as a small tree whose nodes know their line.
//!
//! Built from `saphyr-parser`'s events so every error can say where it is.
//! Scalars are resolved with YAML 1.2's core schema (what Compose's parser
//! does for untyped values: `no` and `on` stay strings, `80:80` is a
//! string, `3306` an integer), and keep their source text so that
//! `VERSION: 1.10` becomes the string `1.10`, not `1.1`.
//!
//! Anchors and aliases are expanded, and `<<` merge keys applied (Compose
//! files use both to share settings between services). Limits keep a hostile
//! file from costing much: nesting depth, and the number of nodes after
//! alias expansion ("billion laughs"). One document per file; tags other than
//! the core schema's (`!!str`, ...) are refused (Compose's `!reset` and
//! `!override` only make sense when merging several files, which Berth does
//! not do).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes in a document, counting every copy an alias makes.
pub const MAX_NODES: usize = 100_000;

/// One node: a value and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar: what it resolved to, and its text in the file.
    Scalar(Scalar, String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// What a scalar resolved to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

/// A mapping key (always a scalar, kept as its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub line: usize,
}

/// Why a file is not YAML Berth accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl Node {
    /// The mapping's entries, or None.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// What kind of value this is, for messages ("a list", "a number").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "empty",
            Value::Scalar(Scalar::Bool(_), _) => "a boolean",
            Value::Scalar(Scalar::Int(_), _) => "a number",
            Value::Scalar(Scalar::Float(_), _) => "a number",
            Value::Scalar(Scalar::Str, _) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| v.count()).sum::<usize>(),
            _ => 1,
        }
    }
}

/// Parse one YAML document. An empty file is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut b = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| YamlError {
            line: e.marker().line(),
            message: format!("not valid YAML: {}", e.info()),
        })?;
        b.event(event, span)?;
    }
    Ok(b.root.unwrap_or(Node {
        line: 1,
        value: Value::Null,
    }))
}

enum Frame {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    documents: usize,
    root: Option<Node>,
}

fn err(line: usize, message: impl Into<String>) -> YamlError {
    YamlError {
        line,
        message: message.into(),
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let line = span.start.line();
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(err(
                        line,
                        "a second YAML document (`---`): a Compose file is one document",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = scalar(&text, style, tag.as_deref(), line)?;
                self.add(node, anchor)?;
            }
            Event::Alias(id) => {
                let anchored = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| err(line, "an alias to an unknown anchor"))?;
                // Counted before copying, so a huge copy is never made.
                self.nodes += anchored.count();
                self.check_size(line)?;
                let node = anchored.clone();
                self.add(node, 0)?;
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", line)?;
                self.push(
                    Frame::Seq {
                        line,
                        anchor,
                        items: Vec::new(),
                    },
                    line,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", line)?;
                self.push(
                    Frame::Map {
                        line,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    },
                    line,
                )?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    line,
                    anchor,
                    items,
                }) = self.stack.pop()
                {
                    self.add(
                        Node {
                            line,
                            value: Value::Seq(items),
                        },
                        anchor,
                    )?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    line,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let entries = merge_keys(entries)?;
                    self.add(
                        Node {
                            line,
                            value: Value::Map(entries),
                        },
                        anchor,
                    )?;
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn check_size(&self, line: usize) -> Result<(), YamlError> {
        if self.nodes > MAX_NODES {
            return Err(err(
                line,
                format!(
                    "the document is too big (more than {MAX_NODES} values once aliases are expanded)"
                ),
            ));
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame, line: usize) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(
                line,
                format!("lists and mappings are nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.nodes += 1;
        self.check_size(line)?;
        self.stack.push(frame);
        Ok(())
    }

    /// A finished node goes into its parent (or becomes the root).
    fn add(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if !matches!(node.value, Value::Seq(_) | Value::Map(_)) {
            self.nodes += 1;
            self.check_size(node.line)?;
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let name =
                        match &node.value {
                            Value::Null => String::new(),
                            Value::Scalar(_, text) => text.clone(),
                            _ => return Err(err(
                                node.line,
                                "a list or mapping used as a mapping key; keys must be plain names",
                            )),
                        };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                        return Err(err(
                            node.line,
                            format!(
                                "the key `{name}` appears twice in one mapping (first on line {})",
                                first.line
                            ),
                        ));
                    }
                    *key = Some(Key {
                        name,
                        line: node.line,
                    });
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Apply `<<` merge keys: the merged mappings' entries that the mapping does
/// not set itself are added, earlier merged mappings first.
fn merge_keys(entries: Vec<(Key, Node)>) -> Result<Vec<(Key, Node)>, YamlError> {
    if !entries.iter().any(|(k, _)| k.name == "<<") {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merged = Vec::new();
    for (k, v) in entries {
        if k.name != "<<" {
            own.push((k, v));
            continue;
        }
        let sources = match v.value {
            Value::Map(m) => vec![m],
            Value::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.value {
                        Value::Map(m) => maps.push(m),
                        _ => return Err(err(
                            item.line,
                            "`<<` merges mappings only (an alias of a mapping, or a list of them)",
                        )),
                    }
                }
                maps
            }
            _ => {
                return Err(err(
                    v.line,
                    "`<<` merges mappings only (an alias of a mapping, or a list of them)",
                ))
            }
        };
        merged.extend(sources);
    }
    for source in merged {
        for (k, v) in source {
            if !own.iter().any(|(o, _)| o.name == k.name) {
                own.push((k, v));
            }
        }
    }
    Ok(own)
}

fn check_collection_tag(tag: Option<&Tag>, core: &str, line: usize) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == core => Ok(()),
        Some(t) => Err(unsupported_tag(t, line)),
    }
}

fn unsupported_tag(t: &Tag, line: usize) -> YamlError {
    err(
        line,
        format!(
            "the YAML tag `{t}` is not supported (Berth reads one Compose file; \
             remove the tag)"
        ),
    )
}

fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<Node, YamlError> {
    let s = text.to_string();
    let value = match tag {
        Some(t) if t.is_yaml_core_schema() && t.suffix == "str" => Value::Scalar(Scalar::Str, s),
        Some(t)
            if t.is_yaml_core_schema()
                && matches!(t.suffix.as_str(), "int" | "float" | "bool" | "null") =>
        {
            let v = resolve(&s);
            let ok = matches!(
                (t.suffix.as_str(), &v),
                ("null", Value::Null)
                    | ("bool", Value::Scalar(Scalar::Bool(_), _))
                    | ("int", Value::Scalar(Scalar::Int(_), _))
                    | ("float", Value::Scalar(Scalar::Float(_) | Scalar::Int(_), _))
            );
            if !ok {
                return Err(err(line, format!("`{s}` is not a valid {t}")));
            }
            v
        }
        Some(t) => return Err(unsupported_tag(t, line)),
        None if style == ScalarStyle::Plain => resolve(&s),
        None => Value::Scalar(Scalar::Str, s),
    };
    Ok(Node { line, value })
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve(s: &str) -> Value {
    let scalar = |v| Value::Scalar(v, s.to_string());
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return scalar(Scalar::Bool(true)),
        "false" | "False" | "FALSE" => return scalar(Scalar::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return scalar(Scalar::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return scalar(Scalar::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return scalar(Scalar::Float(f64::NAN)),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if let Ok(n) = i64::from_str_radix(hex, 16) {
            return scalar(Scalar::Int(n));
        }
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if let Ok(n) = i64::from_str_radix(oct, 8) {
            return scalar(Scalar::Int(n));
        }
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = s.parse::<i64>() {
            return scalar(Scalar::Int(n));
        }
    }
    if is_float(digits) {
        if let Ok(f) = s.parse::<f64>() {
            return scalar(Scalar::Float(f));
        }
    }
    scalar(Scalar::Str)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already removed).
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && digits(int),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> Vec<(&str, &Node)> {
        node.as_map()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.name.as_str(), v))
            .collect()
    }

    fn text(node: &Node) -> (&Scalar, &str) {
        match &node.value {
            Value::Scalar(s, t) => (s, t),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn core_schema_and_source_text() {
        let doc = parse(
            "a: 1.10\nb: no\nc: 80:80\nd: 3306\ne: 'true'\nf: true\ng: ~\nh: 0x1F\ni: -2.5e3\nj: !!str 12\nk:\n",
        )
        .unwrap();
        let m = map(&doc);
        assert_eq!(text(m[0].1), (&Scalar::Float(1.1), "1.10"));
        assert_eq!(text(m[1].1), (&Scalar::Str, "no"));
        assert_eq!(text(m[2].1), (&Scalar::Str, "80:80"));
        assert_eq!(text(m[3].1), (&Scalar::Int(3306), "3306"));
        assert_eq!(text(m[4].1), (&Scalar::Str, "true"));
        assert_eq!(text(m[5].1), (&Scalar::Bool(true), "true"));
        assert_eq!(m[6].1.value, Value::Null);
        assert_eq!(text(m[7].1), (&Scalar::Int(31), "0x1F"));
        assert_eq!(text(m[8].1), (&Scalar::Float(-2500.0), "-2.5e3"));
        assert_eq!(text(m[9].1), (&Scalar::Str, "12"));
        assert_eq!(m[10].1.value, Value::Null);
        assert_eq!(m[3].1.line, 4);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = parse(
            "x-base: &base\n  restart: always\n  user: app\nweb:\n  <<: *base\n  user: web\nlist: [*base, *base]\n",
        )
        .unwrap();
        let m = map(&doc);
        let web = map(m[1].1);
        assert_eq!(
            web.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["user", "restart"]
        );
        assert_eq!(text(web[0].1).1, "web");
        match &m[2].1.value {
            Value::Seq(items) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("`a` appears twice") && e.message.contains("line 1"));
    }

    #[test]
    fn refusals() {
        assert!(parse("a: 1\n---\nb: 2\n")
            .unwrap_err()
            .message
            .contains("second YAML document"));
        assert!(parse("a: !reset []\n")
            .unwrap_err()
            .message
            .contains("`!reset`"));
        assert!(parse("? [a]\n: 1\n")
            .unwrap_err()
            .message
            .contains("mapping key"));
        assert!(parse("a: [\n")
            .unwrap_err()
            .message
            .contains("not valid YAML"));
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("too big"), "{e:?}");
    }

    #[test]
    fn empty_file_is_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, Value::Null);
    }
}
