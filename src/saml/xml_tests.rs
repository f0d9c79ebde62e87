use super::*;

fn parse(s: &str) -> Result<Document, Malformed> {
    Document::parse(s.as_bytes(), &Limits::default())
}

#[test]
fn text_is_decoded_whole() {
    let d = parse("<a>admin@victim.com<!---->.evil.com &amp; <![CDATA[x<y]]>&#x41;</a>")
        .expect("parses");
    assert_eq!(d.text(d.root()), "admin@victim.com.evil.com & x<yA");
}

#[test]
fn doctype_is_refused() {
    let e = parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").expect_err("refused");
    assert_eq!(e.kind, MalformedKind::Doctype);
}

#[test]
fn unknown_entity_is_refused() {
    let e = parse("<a>&x;</a>").expect_err("refused");
    assert!(matches!(e.kind, MalformedKind::UnknownEntity(_)));
}

#[test]
fn limits_hold() {
    let deep = "<a>".repeat(100) + &"</a>".repeat(100);
    assert!(matches!(
        parse(&deep).expect_err("deep").kind,
        MalformedKind::TooDeep { .. }
    ));
    let attrs: String = (0..100).map(|i| format!(" a{i}=\"1\"")).collect();
    assert!(matches!(
        parse(&format!("<a{attrs}/>")).expect_err("attrs").kind,
        MalformedKind::TooManyAttributes { .. }
    ));
    let big = format!("<a>{}</a>", "x".repeat(300 * 1024));
    assert!(matches!(
        parse(&big).expect_err("big").kind,
        MalformedKind::TooLarge { .. }
    ));
}

#[test]
fn namespaces_resolve_and_unbound_prefixes_fail() {
    let d = parse(r#"<p:a xmlns:p="urn:p"><b xmlns="urn:d" p:x="1"/></p:a>"#).expect("parses");
    let b = d.child_elements(d.root()).next().expect("b");
    assert!(d.is(b, "urn:d", "b"));
    assert_eq!(d.attr_ns(b, "urn:p", "x"), Some("1"));
    assert!(matches!(
        parse("<q:a/>").expect_err("unbound").kind,
        MalformedKind::UnboundPrefix(_)
    ));
    assert!(matches!(
        parse(r#"<a xmlns:p="urn:x" xmlns:q="urn:x" p:b="1" q:b="2"/>"#)
            .expect_err("dup")
            .kind,
        MalformedKind::DuplicateAttribute(_)
    ));
}

#[test]
fn structure_errors() {
    assert!(matches!(
        parse("<a/><b/>").expect_err("two roots").kind,
        MalformedKind::MultipleRoots
    ));
    assert!(matches!(
        parse("x<a/>").expect_err("text").kind,
        MalformedKind::ContentOutsideRoot
    ));
    assert!(parse("<a>").is_err());
    assert!(parse("<a></b>").is_err());
    assert!(matches!(
        parse("<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>")
            .expect_err("enc")
            .kind,
        MalformedKind::BadDeclaration(_)
    ));
    assert!(parse("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<a/>").is_ok());
    assert!(matches!(
        parse("<a>\u{1}</a>").expect_err("ctl").kind,
        MalformedKind::ForbiddenCharacter(1)
    ));
    assert!(Document::parse(b"<a>\xff</a>", &Limits::default()).is_err());
}

#[test]
fn attribute_values_are_normalised() {
    let d = parse("<a b=\"x&#10;y\nz &lt;\"/>").expect("parses");
    assert_eq!(d.attr(d.root(), "b"), Some("x\ny z <"));
}

#[test]
fn qnames_are_checked() {
    assert_eq!(split_qname("saml:Assertion"), Some(("saml", "Assertion")));
    assert_eq!(split_qname("Assertion"), Some(("", "Assertion")));
    assert_eq!(split_qname("_a-b.c"), Some(("", "_a-b.c")));
    assert_eq!(split_qname("é:ü"), Some(("é", "ü")));
    for bad in ["", ":a", "a:", "a:b:c", "1a", "a:1b", "-a", "a b", "a;b"] {
        assert_eq!(split_qname(bad), None, "{bad}");
    }
}

#[test]
fn xml_declaration_is_checked_strictly() {
    for ok in [
        "<?xml version=\"1.0\"?><a/>",
        "<?xml version='1.0' encoding='utf-8'?><a/>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?><a/>",
        "<?xml version=\"1.0\" standalone=\"yes\" ?><a/>",
    ] {
        assert!(parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "<?xml version=\"1.1\"?><a/>",
        "<?xml version=\"1.0\" standalone=\"nox\"?><a/>",
        "<?xml version=\"1.0\" encoding=\"latin1\"?><a/>",
        "<?xml encoding=\"UTF-8\" version=\"1.0\"?><a/>",
        "<?xml version=\"1.0\" standalone=\"no\" encoding=\"UTF-8\"?><a/>",
        "<?xml version=\"1.0\" foo=\"bar\"?><a/>",
        "<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>",
        "<?xml?><a/>",
    ] {
        assert!(
            matches!(
                parse(bad).expect_err(bad).kind,
                MalformedKind::BadDeclaration(_)
            ),
            "{bad}"
        );
    }
}

#[test]
fn namespace_names_are_absolute_uris() {
    assert!(parse(r#"<a xmlns="urn:x" xmlns:p="http://example.com/a#b"/>"#).is_ok());
    assert!(parse(r#"<a xmlns=""/>"#).is_ok());
    assert!(parse(r#"<a xmlns:p="http://x/a%20b?q=1&amp;r=(2)#f"/>"#).is_ok());
    for bad in [
        r#"<a xmlns:p="relative/path"/>"#,
        "<a xmlns:p=\"http://x/a\tb\"/>",
        r#"<a xmlns="http://x/a b"/>"#,
        r#"<a xmlns:p="http://x/{y}"/>"#,
        r#"<a xmlns:p="1urn:x"/>"#,
        r#"<a xmlns:p="urn:oasis:names:tc:[AML:2.0"/>"#,
        r#"<a xmlns:p="http://www.w3.org/2001/XMLSch%ma"/>"#,
        r#"<a xmlns:p="urn:é"/>"#,
    ] {
        assert!(
            matches!(
                parse(bad).expect_err(bad).kind,
                MalformedKind::BadNamespaceDeclaration(_)
            ),
            "{bad}"
        );
    }
}
