//! App icons, made safe to show before any client sees them.
//!
//! A catalog is written by someone else, and its icons end up in the
//! window's webview. A PNG is passed on as it is (its signature checked). An
//! SVG is a document that can carry script, event handlers, HTML in
//! `foreignObject` and references to other documents; in an `<img>` none of
//! that runs, but a single future change that shows an icon as a document
//! (`<object>`, "open image", a drag into the window) would turn a catalog
//! icon into script next to the window's commands (issue 11). So berthd
//! rewrites every SVG before it leaves: [`sanitize_svg`] parses it as XML
//! and writes out a new document with only an allow-list of SVG elements
//! and presentation attributes; references only to `#fragments` of the same
//! document (and embedded PNG/JPEG/GIF/WebP images); `style` without
//! anything that loads or runs (`url(` other than `#fragment`, `@import`
//! and every other at-rule, `expression(`, escapes); no DOCTYPE (entities
//! are never expanded: billion laughs), comments or processing
//! instructions. What is not on the lists is dropped, with its children;
//! a file that is not well-formed, or too large or deep, is refused with a
//! message for the catalog's author.
//!
//! Both checks run when a catalog is loaded (an icon that cannot be served
//! makes its app a catalog problem) and again on every `AppIcon` (the file
//! may have changed since). They are linear in the file, which is at most
//! [`super::catalog::MAX_ICON_BYTES`]: tens of microseconds for a typical
//! icon, so nothing is cached.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// Elements an SVG icon may have in all (dropped ones included): enough for
/// any drawn icon, and a bound on the work of parsing and drawing one.
pub const MAX_ELEMENTS: usize = 10_000;
/// How deep elements may nest.
pub const MAX_DEPTH: usize = 64;
/// `<use>` elements in all. A `<use>` may not point at anything that holds
/// a `<use>` itself, so each draws at most [`MAX_ELEMENTS`] elements (no
/// exponential "billion laughs" made of `<use>`).
pub const MAX_USES: usize = 256;

const SVG_NS: &str = "http://www.w3.org/2000/svg";
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Why an icon cannot be served; the catalog shows it next to the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("is not a PNG file (it does not start with the PNG signature)")]
    NotPng,
    #[error("is not UTF-8 text; save the SVG as UTF-8")]
    NotUtf8,
    #[error("declares the encoding `{0}`; save the SVG as UTF-8")]
    Encoding(String),
    #[error(
        "is not well-formed XML at byte {at}: {message}; check it with `xmllint --noout` \
         or save it again from the drawing program"
    )]
    Malformed { at: u64, message: String },
    /// What it is instead.
    #[error("is not an SVG file: {0}")]
    NotSvg(String),
    #[error(
        "uses the entity `&{0};` from a DOCTYPE; Berth expands no entities \
         (a DOCTYPE can make a small file huge): write the text out instead"
    )]
    Entity(String),
    #[error("has more than {MAX_ELEMENTS} elements; simplify it or use a PNG")]
    TooManyElements,
    #[error("nests elements more than {MAX_DEPTH} deep; simplify it or use a PNG")]
    TooDeep,
    #[error(
        "has more than {MAX_USES} <use> elements, or a <use> of something that holds \
         a <use>; simplify it or use a PNG"
    )]
    TooManyUses,
}

/// What an icon file is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Svg,
    Png,
}

impl Kind {
    /// By extension, in any case; `None` for anything but `.svg` and `.png`.
    pub fn of(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".svg") {
            Some(Kind::Svg)
        } else if lower.ends_with(".png") {
            Some(Kind::Png)
        } else {
            None
        }
    }

    /// The exact media type the icon is served as.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Svg => "image/svg+xml",
            Kind::Png => "image/png",
        }
    }
}

/// The bytes to serve for an icon file's content: a PNG as it is, an SVG
/// rewritten by [`sanitize_svg`].
pub fn safe(kind: Kind, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
    match kind {
        Kind::Png if bytes.starts_with(PNG_SIGNATURE) => Ok(bytes),
        Kind::Png => Err(Error::NotPng),
        Kind::Svg => sanitize_svg(&bytes).map(String::into_bytes),
    }
}

/// `bytes` as an SVG document with nothing in it that runs, loads or
/// expands: see the module essay for what is kept.
pub fn sanitize_svg(bytes: &[u8]) -> Result<String, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    let malformed = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| Error::Malformed {
        at: reader.error_position(),
        message: e.to_string(),
    };
    let mut w = Writer::default();
    // Open elements; `Some(depth)` while inside a dropped one.
    let mut open: Vec<Open> = Vec::new();
    let mut dropping: Option<usize> = None;
    let mut root_seen = false;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&reader, &e))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(Error::TooManyElements);
                }
                if open.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                let name = e.name().as_ref().to_string();
                if open.is_empty() {
                    if root_seen {
                        return Err(Error::Malformed {
                            at: reader.buffer_position(),
                            message: format!("a second root element <{name}>"),
                        });
                    }
                    if name != "svg" {
                        return Err(Error::NotSvg(format!(
                            "its root element is <{name}>, not <svg>"
                        )));
                    }
                    root_seen = true;
                }
                let keep = dropping.is_none()
                    && w.start(&e, &name, open.is_empty(), reader.buffer_position())?;
                if !keep && dropping.is_none() {
                    dropping = Some(open.len());
                }
                if empty {
                    if keep {
                        w.out.push_str("/>");
                    }
                    w.end_element(keep, &name);
                    if dropping == Some(open.len()) {
                        dropping = None;
                    }
                } else {
                    if keep {
                        w.out.push('>');
                    }
                    open.push(Open { name, keep });
                }
            }
            Event::End(_) => {
                let Some(Open { name, keep }) = open.pop() else {
                    return Err(Error::Malformed {
                        at: reader.buffer_position(),
                        message: "an end tag without a start tag".into(),
                    });
                };
                if keep {
                    w.out.push_str("</");
                    w.out.push_str(&name);
                    w.out.push('>');
                }
                w.end_element(keep, &name);
                if dropping == Some(open.len()) {
                    dropping = None;
                }
            }
            Event::Text(t) => {
                let t = t.xml10_content();
                if open.is_empty() {
                    if !root_seen && !t.trim().is_empty() {
                        return Err(Error::NotSvg("it starts with text, not <svg>".into()));
                    }
                    if !t.trim().is_empty() {
                        return Err(Error::Malformed {
                            at: reader.buffer_position(),
                            message: "text outside the root element".into(),
                        });
                    }
                } else if dropping.is_none() {
                    w.text(&t);
                }
            }
            Event::CData(t) => {
                if open.is_empty() {
                    return Err(Error::Malformed {
                        at: reader.buffer_position(),
                        message: "CDATA outside the root element".into(),
                    });
                }
                if dropping.is_none() {
                    w.text(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved: Cow<str> =
                    if let Some(c) = r.resolve_char_ref().map_err(|e| malformed(&reader, &e))? {
                        Cow::Owned(c.to_string())
                    } else if let Some(s) = resolve_predefined_entity(&r) {
                        Cow::Borrowed(s)
                    } else {
                        return Err(Error::Entity(r.to_string()));
                    };
                if open.is_empty() {
                    return Err(Error::Malformed {
                        at: reader.buffer_position(),
                        message: "a reference outside the root element".into(),
                    });
                }
                if dropping.is_none() {
                    w.text(&resolved);
                }
            }
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|e| malformed(&reader, &e))?;
                    if !matches!(
                        enc.to_ascii_lowercase().as_str(),
                        "utf-8" | "utf8" | "us-ascii" | "ascii"
                    ) {
                        return Err(Error::Encoding(enc.to_string()));
                    }
                }
            }
            // No DOCTYPE (its entities are never expanded: billion laughs,
            // XXE), comments or processing instructions go out.
            Event::DocType(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(o) = open.last() {
        return Err(Error::Malformed {
            at: reader.buffer_position(),
            message: format!("<{}> is not closed", o.name),
        });
    }
    if !root_seen {
        return Err(Error::NotSvg("it has no <svg> element".into()));
    }
    w.check_uses()?;
    Ok(w.out)
}

struct Open {
    name: String,
    keep: bool,
}

/// The document being written, and what is needed to check `<use>`s at the
/// end.
#[derive(Default)]
struct Writer {
    out: String,
    /// Where the `<style>` being written starts, and its text so far: the
    /// text is checked whole at its end tag, and the element taken back
    /// out if it fails.
    style: Option<(usize, String)>,
    /// Ids of the open elements, each with whether it holds a `<use>`.
    ids: Vec<Option<String>>,
    /// Ids of elements that are or hold a `<use>`.
    holding_use: HashSet<String>,
    /// What each `<use>` points at.
    use_targets: Vec<String>,
}

impl Writer {
    /// Write the start tag of `e` (without its closing `>`), unless the
    /// element is dropped: then write nothing and return false.
    fn start(&mut self, e: &BytesStart, name: &str, root: bool, at: u64) -> Result<bool, Error> {
        if !ELEMENTS.contains(&name) || self.style.is_some() {
            return Ok(false);
        }
        let mark = self.out.len();
        self.out.push('<');
        self.out.push_str(name);
        if root {
            // The only namespaces of the output: its elements are SVG's,
            // `xlink:href` is XLink's. Any other declaration is dropped.
            self.out
                .push_str(&format!(" xmlns=\"{SVG_NS}\" xmlns:xlink=\"{XLINK_NS}\""));
        }
        let mut id = None;
        let mut href = None;
        for attr in e.attributes() {
            let attr = attr.map_err(|e| Error::Malformed {
                at,
                message: format!("in <{name}>: {e}"),
            })?;
            let key = attr.key.as_ref();
            let value = attr
                .normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_predefined_entity)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, entity),
                    ) => Error::Entity(entity),
                    other => Error::Malformed {
                        at,
                        message: format!("in <{name}> {key}: {other}"),
                    },
                })?;
            let keep = match key {
                "href" | "xlink:href" => {
                    let ok = if name == "image" {
                        is_embedded_image(&value)
                    } else {
                        is_fragment(&value)
                    };
                    if ok {
                        href = Some(value.trim().trim_start_matches('#').to_string());
                    }
                    ok
                }
                "style" => css_is_safe(&value),
                "id" => {
                    id = Some(value.to_string());
                    true
                }
                "xml:space" | "xml:lang" => true,
                // Presentation attributes are CSS values too: a backslash
                // escape (`u\rl(…)`) would hide a remote `url(` from the
                // check below, as in `style`.
                _ => ATTRIBUTES.contains(&key) && !value.contains('\\') && urls_are_local(&value),
            };
            if keep {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(&mut self.out, &value, true);
                self.out.push('"');
            }
        }
        match name {
            // An image with nothing to show (its reference was not an
            // embedded image) is taken out whole.
            "image" if href.is_none() => {
                self.out.truncate(mark);
                return Ok(false);
            }
            "use" => {
                if self.use_targets.len() >= MAX_USES {
                    return Err(Error::TooManyUses);
                }
                self.use_targets.extend(href);
                for open in self.ids.iter().flatten().chain(id.as_ref()) {
                    self.holding_use.insert(open.clone());
                }
            }
            "style" => self.style = Some((mark, String::new())),
            _ => {}
        }
        self.ids.push(id);
        Ok(true)
    }

    /// After an element's end (written or not).
    fn end_element(&mut self, kept: bool, name: &str) {
        if !kept {
            return;
        }
        self.ids.pop();
        if name == "style" {
            if let Some((mark, css)) = self.style.take() {
                if !css_is_safe(&css) {
                    self.out.truncate(mark);
                }
            }
        }
    }

    fn text(&mut self, t: &str) {
        if let Some((_, css)) = &mut self.style {
            css.push_str(t);
        }
        escape_into(&mut self.out, t, false);
    }

    /// No `<use>` points at something that holds a `<use>`.
    fn check_uses(&self) -> Result<(), Error> {
        if self
            .use_targets
            .iter()
            .any(|t| self.holding_use.contains(t))
        {
            return Err(Error::TooManyUses);
        }
        Ok(())
    }
}

/// `s` escaped for XML text, or for an attribute value in `"`.
fn escape_into(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\t' | '\n' | '\r' if attribute => out.push(' '),
            // Characters XML 1.0 does not allow (from character
            // references) go as U+FFFD; the output must stay well-formed.
            c if (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' => {
                out.push('\u{FFFD}')
            }
            c => out.push(c),
        }
    }
}

/// `#name`: a reference into the same document, and nothing else (no
/// `http:`, `javascript:`, `data:`, other files, XPointer).
fn is_fragment(value: &str) -> bool {
    value
        .trim()
        .strip_prefix('#')
        .is_some_and(|id| !id.is_empty() && id.chars().all(is_id_char))
}

fn is_id_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// An embedded raster image: `data:image/png|jpeg|gif|webp;base64,…`.
fn is_embedded_image(value: &str) -> bool {
    let v = value.trim();
    if !v
        .get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:image/"))
    {
        return false;
    }
    let Some((kind, data)) = v[11..].split_once(";base64,") else {
        return false;
    };
    matches!(
        kind.to_ascii_lowercase().as_str(),
        "png" | "jpeg" | "jpg" | "gif" | "webp"
    ) && data
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | ' ' | '\n'))
}

/// Every `url(` in `value` is `url(#name)` (quoted or not).
fn urls_are_local(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    lower.match_indices("url(").all(|(i, _)| {
        let arg = lower[i + 4..].trim_start().trim_start_matches(['\'', '"']);
        arg.starts_with('#')
            && arg[1..]
                .split([')', '\'', '"'])
                .next()
                .is_some_and(|id| !id.is_empty() && id.trim_end().chars().all(is_id_char))
    })
}

/// CSS functions a `style` may call: colours, lengths, transforms, filters
/// and gradients, none of which loads anything; `url` is checked apart.
const CSS_FUNCTIONS: &[&str] = &[
    "url",
    "rgb",
    "rgba",
    "hsl",
    "hsla",
    "hwb",
    "lab",
    "lch",
    "oklab",
    "oklch",
    "color",
    "calc",
    "min",
    "max",
    "clamp",
    "var",
    "translate",
    "translatex",
    "translatey",
    "rotate",
    "scale",
    "scalex",
    "scaley",
    "skew",
    "skewx",
    "skewy",
    "matrix",
    "blur",
    "brightness",
    "contrast",
    "drop-shadow",
    "grayscale",
    "hue-rotate",
    "invert",
    "opacity",
    "saturate",
    "sepia",
    "linear-gradient",
    "radial-gradient",
    "conic-gradient",
    "repeating-linear-gradient",
    "repeating-radial-gradient",
    "cubic-bezier",
    "steps",
    "not",
    "is",
    "where",
    "nth-child",
    "nth-last-child",
    "nth-of-type",
    "nth-last-of-type",
];

/// Whether CSS (a `style` attribute or a `<style>` element) can neither
/// load nor run anything: no at-rule (`@import`, `@font-face`), no escape
/// (which could spell any of the rest), `url(` only to `#fragments`, and
/// only the functions of [`CSS_FUNCTIONS`] (no `expression(`, `image(`,
/// `image-set(` with a string address, …).
fn css_is_safe(css: &str) -> bool {
    let lower = css.to_ascii_lowercase();
    if lower.contains(['@', '\\']) || !urls_are_local(&lower) {
        return false;
    }
    lower.match_indices('(').all(|(i, _)| {
        let name_start = lower[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map_or(0, |p| p + 1);
        CSS_FUNCTIONS.contains(&&lower[name_start..i])
    })
}

/// The elements an icon keeps: shapes, text, paint servers, clipping,
/// masking, markers and filters. Everything else goes with its children:
/// `script`, `foreignObject`, `iframe`, `a`, the animation elements (which
/// can set `href` to `javascript:`), `feImage` (loads a URL), `metadata`,
/// editor elements (`sodipodi:…`), any prefixed element.
const ELEMENTS: &[&str] = &[
    "svg",
    "g",
    "defs",
    "symbol",
    "use",
    "switch",
    "title",
    "desc",
    "style",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "textPath",
    "image",
    "linearGradient",
    "radialGradient",
    "stop",
    "pattern",
    "clipPath",
    "mask",
    "marker",
    "filter",
    "feBlend",
    "feColorMatrix",
    "feComponentTransfer",
    "feComposite",
    "feConvolveMatrix",
    "feDiffuseLighting",
    "feDisplacementMap",
    "feDistantLight",
    "feDropShadow",
    "feFlood",
    "feFuncA",
    "feFuncB",
    "feFuncG",
    "feFuncR",
    "feGaussianBlur",
    "feMerge",
    "feMergeNode",
    "feMorphology",
    "feOffset",
    "fePointLight",
    "feSpecularLighting",
    "feSpotLight",
    "feTile",
    "feTurbulence",
];

/// Geometry and presentation attributes. Not here: every `on…` event
/// attribute, `href`/`xlink:href` (checked apart), `style` (checked apart),
/// `xml:base`, conditional processing (`requiredExtensions`, …), and any
/// prefixed attribute but `xlink:href`, `xml:space` and `xml:lang`.
const ATTRIBUTES: &[&str] = &[
    "class",
    "transform",
    "viewBox",
    "preserveAspectRatio",
    "version",
    "baseProfile",
    "width",
    "height",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "fx",
    "fy",
    "fr",
    "d",
    "points",
    "pathLength",
    "dx",
    "dy",
    "rotate",
    "textLength",
    "lengthAdjust",
    "startOffset",
    "method",
    "spacing",
    "side",
    "offset",
    "gradientUnits",
    "gradientTransform",
    "spreadMethod",
    "patternUnits",
    "patternContentUnits",
    "patternTransform",
    "clipPathUnits",
    "maskUnits",
    "maskContentUnits",
    "filterUnits",
    "primitiveUnits",
    "markerWidth",
    "markerHeight",
    "markerUnits",
    "refX",
    "refY",
    "orient",
    "type",
    "media",
    "fill",
    "fill-opacity",
    "fill-rule",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-miterlimit",
    "stroke-dasharray",
    "stroke-dashoffset",
    "stroke-opacity",
    "opacity",
    "color",
    "display",
    "visibility",
    "overflow",
    "clip",
    "clip-path",
    "clip-rule",
    "mask",
    "filter",
    "marker-start",
    "marker-mid",
    "marker-end",
    "stop-color",
    "stop-opacity",
    "flood-color",
    "flood-opacity",
    "lighting-color",
    "color-interpolation",
    "color-interpolation-filters",
    "shape-rendering",
    "text-rendering",
    "image-rendering",
    "vector-effect",
    "paint-order",
    "mix-blend-mode",
    "isolation",
    "font-family",
    "font-size",
    "font-size-adjust",
    "font-stretch",
    "font-style",
    "font-variant",
    "font-weight",
    "text-anchor",
    "text-decoration",
    "dominant-baseline",
    "alignment-baseline",
    "baseline-shift",
    "letter-spacing",
    "word-spacing",
    "writing-mode",
    "direction",
    "unicode-bidi",
    "in",
    "in2",
    "result",
    "stdDeviation",
    "mode",
    "values",
    "operator",
    "k1",
    "k2",
    "k3",
    "k4",
    "scale",
    "xChannelSelector",
    "yChannelSelector",
    "radius",
    "tableValues",
    "slope",
    "intercept",
    "amplitude",
    "exponent",
    "baseFrequency",
    "numOctaves",
    "seed",
    "stitchTiles",
    "edgeMode",
    "order",
    "kernelMatrix",
    "kernelUnitLength",
    "divisor",
    "bias",
    "targetX",
    "targetY",
    "preserveAlpha",
    "surfaceScale",
    "diffuseConstant",
    "specularConstant",
    "specularExponent",
    "azimuth",
    "elevation",
    "z",
    "pointsAtX",
    "pointsAtY",
    "pointsAtZ",
    "limitingConeAngle",
];

#[cfg(test)]
mod tests;
