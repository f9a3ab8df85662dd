use super::*;

/// An icon around `body`, as a catalog author would write it.
fn svg(body: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 64 64">{body}</svg>"#
    )
}

/// The head the sanitizer writes for every icon.
const HEAD: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 64 64">"#;

fn clean(body: &str) -> String {
    sanitize_svg(svg(body).as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// What `body` becomes inside the icon.
fn body_of(body: &str) -> String {
    let out = clean(body);
    assert_safe(&out);
    out.strip_prefix(HEAD)
        .and_then(|b| b.strip_suffix("</svg>"))
        .unwrap_or_else(|| panic!("unexpected head or tail: {out}"))
        .to_string()
}

/// Whatever went in, what comes out is an SVG with nothing that runs or
/// loads: checked by parsing the output again, independently of the lists.
fn assert_safe(out: &str) {
    let mut reader = Reader::from_str(out);
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("{out}: {e}")) {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                assert!(ELEMENTS.contains(&name.as_str()), "<{name}> in {out}");
                for a in e.attributes() {
                    let a = a.unwrap();
                    let key = a.key.as_ref().to_ascii_lowercase();
                    let value = a.normalized_value(XmlVersion::Implicit1_0).unwrap();
                    assert!(!key.starts_with("on"), "{key} in {out}");
                    if key.starts_with("xmlns") {
                        assert!(value == SVG_NS || value == XLINK_NS, "{key}={value}");
                        continue;
                    }
                    let lower = value.to_ascii_lowercase();
                    for bad in ["javascript:", "http:", "https:", "file:", "@import"] {
                        assert!(!lower.contains(bad), "{key}={value} in {out}");
                    }
                    if key.ends_with("href") {
                        assert!(
                            is_fragment(&value) || lower.starts_with("data:image/png"),
                            "{key}={value}"
                        );
                    }
                }
            }
            Event::DocType(_) | Event::PI(_) | Event::Comment(_) | Event::Decl(_) => {
                panic!("markup declarations in {out}")
            }
            Event::Text(t) => assert!(!t.contains("javascript:"), "{out}"),
            Event::Eof => break,
            _ => {}
        }
    }
}

#[test]
fn the_catalogs_icons_come_out_as_they_went_in() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    let mut seen = 0;
    for catalog in std::fs::read_dir(&root).unwrap() {
        for app in std::fs::read_dir(catalog.unwrap().path()).unwrap() {
            let icon = app.unwrap().path().join("icon.svg");
            let Ok(text) = std::fs::read_to_string(&icon) else {
                continue;
            };
            let out = sanitize_svg(text.as_bytes()).unwrap();
            assert_safe(&out);
            let expected = text.trim_end().replacen(
                &format!("xmlns=\"{SVG_NS}\""),
                &format!("xmlns=\"{SVG_NS}\" xmlns:xlink=\"{XLINK_NS}\""),
                1,
            );
            assert_eq!(out, expected, "{}", icon.display());
            // A second pass changes nothing.
            assert_eq!(sanitize_svg(out.as_bytes()).unwrap(), out);
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} icons in {}", root.display());
}

#[test]
fn script_and_html_are_dropped_with_everything_in_them() {
    for hostile in [
        "<script>alert(1)</script>",
        "<script><![CDATA[ fetch('/x') ]]></script>",
        "<script xlink:href=\"https://evil.example/x.js\"/>",
        "<foreignObject width=\"64\" height=\"64\"><body xmlns=\"http://www.w3.org/1999/xhtml\">\
         <iframe src=\"https://evil.example\"></iframe><script>alert(1)</script></body></foreignObject>",
        "<iframe src=\"javascript:alert(1)\"/>",
        "<a xlink:href=\"javascript:alert(1)\"><rect width=\"9\" height=\"9\"/></a>",
        "<a href=\"https://evil.example\"><text>click</text></a>",
        // Animation can set an href to `javascript:` after the sanitizer.
        "<animate attributeName=\"href\" to=\"javascript:alert(1)\"/>",
        "<set attributeName=\"onmouseover\" to=\"alert(1)\"/>",
        "<feImage href=\"https://evil.example/x.png\"/>",
        "<handler type=\"application/ecmascript\">alert(1)</handler>",
        "<metadata><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/></metadata>",
        // A prefix bound to SVG's namespace does not smuggle a script in.
        "<s:script xmlns:s=\"http://www.w3.org/2000/svg\">alert(1)</s:script>",
        "<sodipodi:namedview xmlns:sodipodi=\"http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd\"/>",
    ] {
        assert_eq!(body_of(hostile), "", "{hostile}");
    }
    // What is around them stays.
    assert_eq!(
        body_of("<g><script>alert(1)</script><rect width=\"1\" height=\"1\"/></g>"),
        "<g><rect width=\"1\" height=\"1\"/></g>"
    );
}

#[test]
fn event_attributes_go_and_drawing_attributes_stay() {
    let out = sanitize_svg(
        br##"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)" width="64" height="64"><rect width="9" height="9" fill="#fff" onclick="alert(2)" ONMOUSEOVER="alert(3)" xml:base="https://evil.example/" inkscape:label="x" requiredExtensions="http://x"/></svg>"##,
    )
    .unwrap();
    assert_safe(&out);
    assert_eq!(
        out,
        format!(
            r##"<svg xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}" width="64" height="64"><rect width="9" height="9" fill="#fff"/></svg>"##
        )
    );
}

#[test]
fn references_stay_inside_the_icon() {
    // Local references stay.
    assert_eq!(
        body_of(r##"<defs><g id="a"/></defs><use href="#a"/><use xlink:href="#a"/>"##),
        r##"<defs><g id="a"/></defs><use href="#a"/><use xlink:href="#a"/>"##
    );
    // Anything else goes: other documents, other schemes, XPointer.
    for href in [
        "http://evil.example/sprite.svg#a",
        "https://evil.example/#a",
        "sprite.svg#a",
        "/etc/passwd",
        "file:///etc/passwd",
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:image/svg+xml;base64,PHN2Zy8+",
        "#xpointer(id('a'))",
        "#",
    ] {
        for attr in ["href", "xlink:href"] {
            let out = body_of(&format!(r#"<use {attr}="{href}"/>"#));
            assert_eq!(out, "<use/>", "{attr}={href}");
        }
    }
    // Paint from another document.
    assert_eq!(
        body_of(r##"<rect fill="url(https://evil.example/p.svg#g)" stroke="url(#g)"/>"##),
        r##"<rect stroke="url(#g)"/>"##
    );
    assert_eq!(
        body_of(r##"<rect fill="url('#g') " mask="url( &quot;http://x&quot; )"/>"##),
        r##"<rect fill="url('#g') "/>"##
    ); // A CSS escape hides `url(` from a plain search, in attributes as in
       // `style`.
    assert_eq!(
        body_of(
            r##"<rect fill="u\rl(https://evil.example/p.svg#a)" filter="ur&#x5c;6c(http://x)" stroke="url(#g)"/>"##
        ),
        r##"<rect stroke="url(#g)"/>"##
    );
}

#[test]
fn images_only_embedded_rasters() {
    let png = "data:image/png;base64,iVBORw0KGgo=";
    assert_eq!(
        body_of(&format!(r#"<image width="8" height="8" href="{png}"/>"#)),
        format!(r#"<image width="8" height="8" href="{png}"/>"#)
    );
    for href in [
        "https://evil.example/x.png",
        "x.png",
        "data:image/svg+xml;base64,PHN2Zy8+",
        "data:text/html;base64,PHNjcmlwdD4=",
        "data:image/png,<svg/>",
    ] {
        assert_eq!(
            body_of(&format!(
                r#"<image width="8" height="8" xlink:href="{href}"/>"#
            )),
            "",
            "{href}"
        );
    }
}

#[test]
fn style_that_loads_or_runs_is_dropped() {
    // Plain styles, as drawing programs write them, stay.
    let fine = r##"<style>.a{fill:url(#g);stroke:rgb(1,2,3)} rect:nth-child(2n){opacity:.5}</style><rect class="a" style="fill:#000;font-family:'DejaVu Sans';transform:rotate(3deg)"/>"##;
    assert_eq!(body_of(fine), fine);
    for css in [
        "@import url(https://evil.example/x.css);",
        "@import 'https://evil.example/x.css';",
        "@font-face{font-family:x;src:url(https://evil.example/f.woff)}",
        "rect{fill:url(https://evil.example/p.svg#g)}",
        "rect{fill:URL( 'http://evil.example' )}",
        "rect{background:expression(alert(1))}",
        "rect{fill:u\\72l(http://evil.example)}",
        "rect{mask-image:image-set('https://evil.example/m.png' 1x)}",
        "rect{-moz-binding:url(https://evil.example/x.xml#b)}",
    ] {
        assert_eq!(body_of(&format!("<style>{css}</style>")), "", "{css}");
        assert_eq!(
            body_of(&format!("<style><![CDATA[{css}]]></style>")),
            "",
            "CDATA {css}"
        );
        let attr = css.replace('"', "'");
        assert_eq!(
            body_of(&format!(r#"<rect width="1" style="{attr}"/>"#)),
            r#"<rect width="1"/>"#,
            "style=\"{attr}\""
        );
    }
    // A `<style>` with markup in it: the markup goes, the text is checked.
    assert_eq!(
        body_of("<style>rect{}<script>alert(1)</script></style>"),
        "<style>rect{}</style>"
    );
}

#[test]
fn doctype_entities_are_never_expanded() {
    // Billion laughs: refused at the first reference, nothing expanded.
    let mut doc = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE svg [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        doc.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    doc.push_str("]>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><text>&lol9;</text></svg>");
    assert_eq!(
        sanitize_svg(doc.as_bytes()),
        Err(Error::Entity("lol9".into()))
    );
    // External entities (XXE), in text and in attributes.
    let xxe = "<!DOCTYPE svg [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
               <svg xmlns=\"http://www.w3.org/2000/svg\"><text>&x;</text></svg>";
    assert_eq!(sanitize_svg(xxe.as_bytes()), Err(Error::Entity("x".into())));
    let xxe = "<!DOCTYPE svg [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
               <svg xmlns=\"http://www.w3.org/2000/svg\"><rect class=\"&x;\"/></svg>";
    assert_eq!(sanitize_svg(xxe.as_bytes()), Err(Error::Entity("x".into())));
    // A plain DOCTYPE, comments and processing instructions are dropped.
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
               <!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n\
               <?xml-stylesheet href=\"https://evil.example/x.css\"?>\n<!-- made by hand -->\n\
               <svg xmlns=\"http://www.w3.org/2000/svg\"><!-- a --><?php x ?><rect/></svg>\n";
    let out = sanitize_svg(doc.as_bytes()).unwrap();
    assert_safe(&out);
    assert_eq!(
        out,
        format!(r#"<svg xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}"><rect/></svg>"#)
    );
}

#[test]
fn text_is_written_back_escaped() {
    assert_eq!(
        body_of("<text x=\"1\" class=\"a&quot;b&lt;\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x41;&#66;</text>"),
        "<text x=\"1\" class=\"a&quot;b&lt;\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; AB</text>"
    );
    // A character XML 1.0 has no place for does not break the output.
    assert_eq!(body_of("<text>a&#x1;b</text>"), "<text>a\u{FFFD}b</text>");
}

#[test]
fn namespaces_are_the_sanitizers_own() {
    // Whatever the author declared, the output's elements are SVG's.
    let out = sanitize_svg(
        br#"<svg xmlns="http://www.w3.org/1999/xhtml" xmlns:xlink="urn:x" xmlns:e="urn:e"><g xmlns="http://www.w3.org/1999/xhtml" e:x="1"><rect/></g></svg>"#,
    )
    .unwrap();
    assert_eq!(
        out,
        format!(r#"<svg xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}"><g><rect/></g></svg>"#)
    );
}

#[test]
fn what_is_not_a_well_formed_svg_is_refused() {
    let cases: &[(&[u8], &str)] = &[
        (b"<svg><rect></svg>", "not well-formed XML"),
        (b"<svg><rect>", "not well-formed XML"),
        (b"<svg/><svg/>", "second root"),
        (b"<svg/>trailing", "not well-formed XML"),
        (b"<svg>&lt</svg>", "not well-formed XML"),
        (b"<svg a=\"1\" a=\"2\"/>", "not well-formed XML"),
        (b"<html><svg/></html>", "root element is <html>"),
        (
            b"<s:svg xmlns:s=\"http://www.w3.org/2000/svg\"/>",
            "<s:svg>",
        ),
        (b"   ", "no <svg> element"),
        (b"not an image", "not an SVG file: it starts with text"),
        (b"<svg>\xff</svg>", "not UTF-8"),
        (
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><svg/>",
            "encoding `ISO-8859-1`",
        ),
    ];
    for (bytes, says) in cases {
        let e = sanitize_svg(bytes).unwrap_err().to_string();
        assert!(e.contains(says), "{}: {e}", String::from_utf8_lossy(bytes));
    }
    // A message says what to do.
    let e = sanitize_svg(b"<svg><rect></svg>").unwrap_err().to_string();
    assert!(e.contains("xmllint"), "{e}");
}

#[test]
fn huge_or_deep_icons_are_refused() {
    let many = svg(&"<g/>".repeat(MAX_ELEMENTS));
    assert_eq!(sanitize_svg(many.as_bytes()), Err(Error::TooManyElements));
    // Dropped elements count as well: they cost parsing all the same.
    let many = svg(&format!(
        "<metadata>{}</metadata>",
        "<x/>".repeat(MAX_ELEMENTS)
    ));
    assert_eq!(sanitize_svg(many.as_bytes()), Err(Error::TooManyElements));
    let fits = svg(&"<g/>".repeat(MAX_ELEMENTS - 1));
    assert!(sanitize_svg(fits.as_bytes()).is_ok());

    let deep = svg(&format!(
        "{}{}",
        "<g>".repeat(MAX_DEPTH),
        "</g>".repeat(MAX_DEPTH)
    ));
    assert_eq!(sanitize_svg(deep.as_bytes()), Err(Error::TooDeep));
    let fits = svg(&format!(
        "{}{}",
        "<g>".repeat(MAX_DEPTH - 1),
        "</g>".repeat(MAX_DEPTH - 1)
    ));
    assert!(sanitize_svg(fits.as_bytes()).is_ok());
}

#[test]
fn use_cannot_multiply() {
    // Each level draws the one below twice: 2^n copies of a path.
    let mut body = String::from(r#"<defs><path id="l0" d="M0 0h1"/>"#);
    for i in 1..30 {
        let p = i - 1;
        body.push_str(&format!(
            r##"<g id="l{i}"><use href="#l{p}"/><use href="#l{p}" x="1"/></g>"##
        ));
    }
    body.push_str(r##"</defs><use href="#l29"/>"##);
    assert_eq!(sanitize_svg(svg(&body).as_bytes()), Err(Error::TooManyUses));
    // A `<use>` of a `<use>`.
    let body = r##"<use id="a" href="#b"/><use id="b" href="#a"/>"##;
    assert_eq!(sanitize_svg(svg(body).as_bytes()), Err(Error::TooManyUses));
    // Many flat ones.
    let body = format!(
        r##"<path id="p" d="M0 0h1"/>{}"##,
        r##"<use href="#p"/>"##.repeat(MAX_USES + 1)
    );
    assert_eq!(sanitize_svg(svg(&body).as_bytes()), Err(Error::TooManyUses));
    // One level, as icons use it, is fine.
    let body = format!(
        r##"<defs><g id="p"><path d="M0 0h1"/></g></defs>{}"##,
        r##"<use href="#p"/>"##.repeat(MAX_USES)
    );
    assert!(sanitize_svg(svg(&body).as_bytes()).is_ok());
}

#[test]
fn png_passes_as_it_is() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR rest".to_vec();
    assert_eq!(safe(Kind::Png, png.clone()), Ok(png));
    assert_eq!(safe(Kind::Png, b"GIF89a".to_vec()), Err(Error::NotPng));
    assert_eq!(
        safe(Kind::Svg, b"\x89PNG\r\n\x1a\n".to_vec()),
        Err(Error::NotUtf8)
    );
    assert_eq!(Kind::of("Icon.SVG"), Some(Kind::Svg));
    assert_eq!(Kind::of("icon.png"), Some(Kind::Png));
    assert_eq!(Kind::of("icon.gif"), None);
    assert_eq!(Kind::Svg.media_type(), "image/svg+xml");
}

#[test]
fn a_large_icon_is_quick() {
    // About the largest icon a catalog may have: a sanitized pass is
    // linear, and far below what a catalog listing may spend per app.
    let path = r##"<path d="M10 10h20v20H10z" fill="url(#g)" stroke="#123456" stroke-width="2"/>"##;
    let body = path.repeat((super::super::catalog::MAX_ICON_BYTES as usize - 200) / path.len());
    let doc = svg(&body);
    assert!(doc.len() as u64 <= super::super::catalog::MAX_ICON_BYTES);
    let start = std::time::Instant::now();
    let n = 20;
    for _ in 0..n {
        sanitize_svg(doc.as_bytes()).unwrap();
    }
    let each = start.elapsed() / n;
    eprintln!("sanitizing {} bytes took {each:?}", doc.len());
    // Debug builds are slow; this bounds a regression to quadratic work.
    assert!(each < std::time::Duration::from_secs(1), "{each:?}");
}
