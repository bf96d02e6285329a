//! Reads a WebDAV multistatus (RFC 4918 §13) answering a CalDAV
//! `calendar-query`: each `<response>`'s `<href>` and `<calendar-data>`.
//!
//! quick-xml's namespace-aware [`NsReader`] reads the XML. Servers differ in
//! everything XML allows: `D:`, `d:`, `ns0:` or a default namespace for
//! `DAV:`, CDATA or entity-escaped calendar data, `&#13;` for carriage
//! returns, comments, a DOCTYPE. Elements are therefore matched by namespace
//! URI and local name, never by prefix. An element whose prefix is undeclared
//! is matched by local name alone, which keeps a sloppy server readable
//! without letting a declared foreign namespace pass for `DAV:`.
//!
//! Text is kept as sent: line ends are not normalised (calendar data keeps its
//! CRLFs), and a named entity other than the five predefined ones stays as
//! written, as no DTD is read. A body that is not well-formed (an unclosed or
//! mismatched tag, a dangling `&`, a character reference to no character) is
//! an error.

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{NamespaceResolver, ResolveResult};
use quick_xml::reader::NsReader;

/// The WebDAV namespace.
const DAV: &str = "DAV:";
/// The CalDAV namespace (RFC 4791).
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";

/// One `<response>` of a multistatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavResponse {
    /// The resource's href, as sent (percent-encoded, often absolute-path).
    pub href: String,
    /// The `calendar-data` property, if the server returned it.
    pub calendar_data: Option<String>,
}

/// Why a body is not a readable multistatus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML at byte {at}: {what}")]
pub struct XmlError {
    at: u64,
    what: String,
}

impl XmlError {
    fn new(at: u64, what: impl ToString) -> Self {
        Self { at, what: what.to_string() }
    }
}

/// Parses a multistatus body into its responses.
pub fn parse_multistatus(xml: &str) -> Result<Vec<DavResponse>, XmlError> {
    let mut reader = NsReader::from_str(xml);
    let mut collector = Collector::default();
    loop {
        let event = reader.read_event().map_err(|e| {
            // A namespace error (a reserved prefix rebound, nesting too deep)
            // leaves no error position: the tag just read is where it is.
            let at = match e {
                quick_xml::Error::Namespace(_) => reader.buffer_position(),
                _ => reader.error_position(),
            };
            XmlError::new(at, e)
        })?;
        match event {
            Event::Start(tag) => collector.start(element(reader.resolver(), &tag)),
            Event::Empty(tag) => {
                collector.start(element(reader.resolver(), &tag));
                collector.end();
            }
            // The reader has checked that it closes the innermost open element.
            Event::End(_) => collector.end(),
            Event::Text(text) => collector.text(&text),
            Event::CData(data) => collector.text(&data),
            Event::GeneralRef(reference) => {
                collector.reference(&reference).map_err(|e| XmlError::new(reader.buffer_position(), e))?
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if !collector.open.is_empty() {
        return Err(XmlError::new(reader.buffer_position(), "an element is not closed"));
    }
    if !collector.saw_multistatus {
        return Err(XmlError::new(0, "no DAV:multistatus element"));
    }
    Ok(collector.responses)
}

/// The elements the reader looks for; everything else is [`Element::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Multistatus,
    Response,
    Href,
    CalendarData,
    Other,
}

/// Names an element by namespace URI and local name. Without a namespace (an
/// undeclared prefix, or no prefix and no default namespace) the local name
/// decides.
fn element(resolver: &NamespaceResolver, tag: &BytesStart<'_>) -> Element {
    let (ns, local) = resolver.resolve_element(tag.name());
    let ns = match ns {
        ResolveResult::Bound(ns) => Some(ns.into_inner()),
        ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
    };
    let is = |uri: &str, name: &str| local.as_ref() == name && ns.is_none_or(|n| n == uri);
    if is(DAV, "multistatus") {
        Element::Multistatus
    } else if is(DAV, "response") {
        Element::Response
    } else if is(DAV, "href") {
        Element::Href
    } else if is(CALDAV, "calendar-data") {
        Element::CalendarData
    } else {
        Element::Other
    }
}

/// Gathers `<response>`s: the `<href>` directly inside each, and the text of
/// the `<calendar-data>` anywhere inside it.
#[derive(Default)]
struct Collector {
    saw_multistatus: bool,
    /// The open elements, to tell a response's own `<href>` from hrefs nested
    /// in properties.
    open: Vec<Element>,
    current: Option<Partial>,
    capture: Option<Element>,
    responses: Vec<DavResponse>,
}

#[derive(Default)]
struct Partial {
    href: Option<String>,
    calendar_data: Option<String>,
}

impl Collector {
    fn start(&mut self, element: Element) {
        let parent = self.open.last().copied();
        match (element, self.current.as_mut()) {
            (Element::Multistatus, _) => self.saw_multistatus = true,
            (Element::Response, _) => self.current = Some(Partial::default()),
            (Element::Href, Some(current)) if parent == Some(Element::Response) && current.href.is_none() => {
                current.href = Some(String::new());
                self.capture = Some(Element::Href);
            }
            (Element::CalendarData, Some(current)) => {
                current.calendar_data = Some(String::new());
                self.capture = Some(Element::CalendarData);
            }
            _ => {}
        }
        self.open.push(element);
    }

    fn end(&mut self) {
        let Some(element) = self.open.pop() else { return };
        if self.capture == Some(element) {
            self.capture = None;
        }
        if element == Element::Response
            && let Some(done) = self.current.take()
            && let Some(href) = done.href.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
        {
            let calendar_data = done.calendar_data.filter(|d| !d.trim().is_empty());
            self.responses.push(DavResponse { href, calendar_data });
        }
    }

    fn text(&mut self, text: &str) {
        let Some(current) = self.current.as_mut() else { return };
        let target = match self.capture {
            Some(Element::Href) => current.href.as_mut(),
            Some(Element::CalendarData) => current.calendar_data.as_mut(),
            _ => None,
        };
        if let Some(target) = target {
            target.push_str(text);
        }
    }

    /// A character reference or a predefined entity is the text it stands
    /// for; another entity stays as written. A character reference to no
    /// character is an error wherever it is.
    fn reference(&mut self, reference: &BytesRef<'_>) -> Result<(), quick_xml::Error> {
        match reference.resolve_char_ref()? {
            Some(c) => self.text(c.encode_utf8(&mut [0; 4])),
            None => match quick_xml::escape::resolve_predefined_entity(reference) {
                Some(text) => self.text(text),
                None => {
                    self.text("&");
                    self.text(reference);
                    self.text(";");
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICS: &str = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn one(xml: &str) -> DavResponse {
        let mut responses = parse_multistatus(xml).expect("parses");
        assert_eq!(responses.len(), 1, "{responses:?}");
        responses.remove(0)
    }

    #[test]
    fn reads_upper_case_prefixes() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:response>
    <D:href>/cal/a.ics</D:href>
    <D:propstat><D:prop><D:getetag>"1"</D:getetag><C:calendar-data>{ICS}</C:calendar-data></D:prop>
    <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
</D:multistatus>"#
        );
        assert_eq!(one(&xml), DavResponse { href: "/cal/a.ics".into(), calendar_data: Some(ICS.into()) });
    }

    #[test]
    fn reads_lower_case_and_generated_prefixes() {
        // Nextcloud/SabreDAV style (d:, cal:) and Xandikos style (ns0:, ns1:).
        for (dav, cal) in [("d", "cal"), ("ns0", "ns1")] {
            let xml = format!(
                r#"<{dav}:multistatus xmlns:{dav}="DAV:" xmlns:{cal}="urn:ietf:params:xml:ns:caldav"><{dav}:response><{dav}:href>/x/b.ics</{dav}:href><{dav}:propstat><{dav}:prop><{cal}:calendar-data>{ICS}</{cal}:calendar-data></{dav}:prop></{dav}:propstat></{dav}:response></{dav}:multistatus>"#
            );
            assert_eq!(one(&xml).calendar_data.as_deref(), Some(ICS), "{dav}/{cal}");
        }
    }

    #[test]
    fn reads_default_namespaces_and_redeclarations() {
        // iCloud style: DAV: as the default namespace, calendar-data
        // redeclaring the default for itself.
        let xml = format!(
            r#"<multistatus xmlns="DAV:"><response><href>https://p01-caldav.icloud.com/1/calendars/w/c.ics</href><propstat><prop><calendar-data xmlns="urn:ietf:params:xml:ns:caldav"><![CDATA[{ICS}]]></calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#
        );
        let r = one(&xml);
        assert_eq!(r.href, "https://p01-caldav.icloud.com/1/calendars/w/c.ics");
        assert_eq!(r.calendar_data.as_deref(), Some(ICS));
    }

    #[test]
    fn decodes_entities_in_calendar_data() {
        let xml = r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/a%40b.ics</D:href><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR&#13;
SUMMARY:Tom &amp; Jerry &lt;3 &#x263A; &unknown;&#13;
END:VCALENDAR&#13;
</C:calendar-data></D:prop></D:propstat></D:response></D:multistatus>"#;
        let r = one(xml);
        assert_eq!(r.href, "/a%40b.ics");
        assert_eq!(
            r.calendar_data.as_deref(),
            Some("BEGIN:VCALENDAR\r\nSUMMARY:Tom & Jerry <3 \u{263A} &unknown;\r\nEND:VCALENDAR\r\n")
        );
    }

    #[test]
    fn a_declared_foreign_namespace_is_not_dav() {
        let xml = r#"<D:multistatus xmlns:D="DAV:" xmlns:X="urn:example"><D:response><X:href>/wrong</X:href><D:href>/right.ics</D:href></D:response></D:multistatus>"#;
        assert_eq!(one(xml).href, "/right.ics");
    }

    #[test]
    fn hrefs_inside_properties_are_not_the_response_href() {
        let xml = r#"<D:multistatus xmlns:D="DAV:"><D:response><D:propstat><D:prop><D:owner><D:href>/principal/</D:href></D:owner></D:prop></D:propstat><D:href>/cal/z.ics</D:href></D:response></D:multistatus>"#;
        assert_eq!(one(xml).href, "/cal/z.ics");
    }

    #[test]
    fn skips_comments_doctype_and_keeps_several_responses() {
        let xml = r#"<?xml version="1.0"?><!DOCTYPE multistatus [<!ENTITY x "y">]><!-- a <comment> -->
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:response><D:href>/1.ics</D:href><D:propstat><D:prop><C:calendar-data/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
<D:response><D:href attr='a>b'>/2.ics</D:href></D:response>
</D:multistatus>"#;
        let responses = parse_multistatus(xml).unwrap();
        assert_eq!(
            responses,
            vec![
                DavResponse { href: "/1.ics".into(), calendar_data: None },
                DavResponse { href: "/2.ics".into(), calendar_data: None },
            ]
        );
    }

    /// A body with DAV: and CalDAV declared as the caller says, `{d}` and `{c}`
    /// standing for their prefixes (with the colon, or empty).
    fn styled(decls: &str, d: &str, c: &str, data: &str) -> String {
        format!(
            "<{d}multistatus {decls}><{d}response><{d}href>/s.ics</{d}href><{d}propstat><{d}prop>\
             <{c}calendar-data>{data}</{c}calendar-data></{d}prop></{d}propstat></{d}response></{d}multistatus>"
        )
    }

    #[test]
    fn reads_any_prefix_or_default_namespace() {
        let dav_default = r#"xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav""#;
        let caldav_default = r#"xmlns:a="DAV:" xmlns="urn:ietf:params:xml:ns:caldav""#;
        // Prefixes mean nothing: here C is DAV: and D is CalDAV.
        let swapped = r#"xmlns:C="DAV:" xmlns:D="urn:ietf:params:xml:ns:caldav""#;
        let cal = r#"xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav""#;
        for (decls, d, c) in
            [(dav_default, "", "C:"), (caldav_default, "a:", ""), (swapped, "C:", "D:"), (cal, "d:", "cal:")]
        {
            let r = one(&styled(decls, d, c, ICS));
            assert_eq!(r, DavResponse { href: "/s.ics".into(), calendar_data: Some(ICS.into()) }, "{decls}");
        }
    }

    #[test]
    fn reads_calendar_data_in_cdata_as_written() {
        // Inside CDATA nothing is an entity or markup; CDATA and text may alternate.
        let data = "<![CDATA[BEGIN:VCALENDAR\r\nSUMMARY:a &amp; <b> ]]]]><![CDATA[> c\r\n]]>END:VCALENDAR\r\n";
        let r = one(&styled(r#"xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav""#, "D:", "C:", data));
        assert_eq!(
            r.calendar_data.as_deref(),
            Some("BEGIN:VCALENDAR\r\nSUMMARY:a &amp; <b> ]]> c\r\nEND:VCALENDAR\r\n")
        );
    }

    #[test]
    fn decodes_entities_in_calendar_data_and_href() {
        let xml = r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/cal/a&amp;b&#x2F;c&#46;ics</D:href><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR&#13;&#x0A;SUMMARY:&quot;Q&quot; &apos;A&apos; &lt;&gt;&#X0a;END:VCALENDAR&#13;&#10;</C:calendar-data></D:prop></D:propstat></D:response></D:multistatus>"#;
        // `&#X0a;` (upper-case X) is no character reference: XML spells it `&#x`.
        assert!(parse_multistatus(xml).is_err());
        let r = one(&xml.replace("&#X0a;", "&#x0A;"));
        assert_eq!(r.href, "/cal/a&b/c.ics");
        assert_eq!(r.calendar_data.as_deref(), Some("BEGIN:VCALENDAR\r\nSUMMARY:\"Q\" 'A' <>\nEND:VCALENDAR\r\n"));
    }

    #[test]
    fn skips_whitespace_comments_and_processing_instructions_anywhere() {
        let xml = format!(
            "\u{feff}<?xml version=\"1.0\"?>\r\n<?xml-stylesheet href=\"s.xsl\"?>\r\n<!-- start -->\r\n\
             <D:multistatus xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" >\r\n\t<!-- r -->\r\n\
             <D:response >\r\n  <D:href>\r\n    /cal/w.ics <!-- in href --> \r\n  </D:href >\r\n\
             <D:propstat><D:prop><?pi in prop?><C:calendar-data>BEGIN:VCALENDAR\r\n<!-- a comment -->\
             <?pi inside?>{}</C:calendar-data\r\n></D:prop></D:propstat></D:response>\r\n</D:multistatus >\r\n<!-- end -->\r\n",
            ICS.strip_prefix("BEGIN:VCALENDAR\r\n").unwrap()
        );
        assert_eq!(one(&xml), DavResponse { href: "/cal/w.ics".into(), calendar_data: Some(ICS.into()) });
    }

    #[test]
    fn reads_a_response_with_several_propstats() {
        let xml = format!(
            r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:response><D:href>/a.ics</D:href>
  <D:propstat><D:prop><D:getetag>"1"</D:getetag><C:calendar-data>{ICS}</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  <D:propstat><D:prop><D:displayname/><C:schedule-tag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
</D:response>
<D:response><D:href>/b.ics</D:href>
  <D:propstat><D:prop><C:calendar-data/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
  <D:propstat><D:prop><D:getetag>"2"</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response>
</D:multistatus>"#
        );
        assert_eq!(
            parse_multistatus(&xml).unwrap(),
            vec![
                DavResponse { href: "/a.ics".into(), calendar_data: Some(ICS.into()) },
                DavResponse { href: "/b.ics".into(), calendar_data: None },
            ]
        );
    }

    #[test]
    fn ignores_unknown_elements_and_attributes() {
        let xml = format!(
            r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:X="urn:example">
<X:server-info><X:href>/nothing</X:href></X:server-info>
<D:response X:id="7"><X:response><D:href>/inner-unknown</D:href></X:response>
  <D:href lang="en">/a.ics</D:href><D:href>/second-href-is-ignored</D:href>
  <D:propstat><D:prop><X:calendar-data>not caldav</X:calendar-data><C:calendar-data content-type="text/calendar" version="2.0">{ICS}</C:calendar-data><X:color>#fff</X:color></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  <D:location><D:href>/moved</D:href></D:location><D:responsedescription>fine</D:responsedescription>
</D:response>
<D:sync-token>http://example.com/sync/1</D:sync-token>
</D:multistatus>"#
        );
        assert_eq!(one(&xml), DavResponse { href: "/a.ics".into(), calendar_data: Some(ICS.into()) });
    }

    #[test]
    fn a_namespace_redeclared_on_an_inner_element_holds_there_only() {
        let xml = format!(
            r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response>
<D:href xmlns:D="urn:example:not-dav">/wrong</D:href>
<D:propstat xmlns:D="DAV:" xmlns:C="urn:example:not-caldav"><D:prop><C:calendar-data>wrong</C:calendar-data></D:prop></D:propstat>
<D:href>/right.ics</D:href>
<D:propstat><D:prop xmlns="urn:ietf:params:xml:ns:caldav"><calendar-data>{ICS}</calendar-data></D:prop></D:propstat>
</D:response></D:multistatus>"#
        );
        assert_eq!(one(&xml), DavResponse { href: "/right.ics".into(), calendar_data: Some(ICS.into()) });
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let ok = |body: &str| {
            format!(
                r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/a.ics</D:href><D:propstat><D:prop><C:calendar-data>{body}</C:calendar-data></D:prop></D:propstat></D:response></D:multistatus>"#
            )
        };
        assert!(parse_multistatus(&ok("x")).is_ok());
        for body in [
            // Unclosed or mismatched tags.
            r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/a.ics</D:href>"#.to_owned(),
            r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/a.ics</D:response></D:multistatus>"#.to_owned(),
            r#"<D:multistatus xmlns:D="DAV:"></D:response></D:multistatus>"#.to_owned(),
            r#"<D:multistatus xmlns:D="DAV:"><D:response></d:response></D:multistatus>"#.to_owned(),
            ok("<unclosed>"),
            ok("</stray>"),
            // Bad references.
            ok("&#xZZ;"),
            ok("&#0;"),
            ok("&#x110000;"),
            ok("&#xD800;"),
            ok("&#-1;"),
            ok("Tom & Jerry"),
            ok("&amp"),
            // Unterminated markup.
            ok("<![CDATA[never closed"),
            ok("<!-- never closed"),
            ok("<?never closed"),
            r#"<D:multistatus xmlns:D="DAV:"><D:response attr="never closed></D:response></D:multistatus>"#.to_owned(),
            // The reserved prefixes bound to something else.
            r#"<D:multistatus xmlns:D="DAV:" xmlns:xml="urn:example"></D:multistatus>"#.to_owned(),
        ] {
            assert!(parse_multistatus(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn huge_bodies_read_in_one_pass() {
        // 8 MiB of references in one calendar-data, then 20 000 responses:
        // quick and linear, or this test would not finish.
        let refs = "&amp;&#13;&#x0A;".repeat(8 << 20 >> 4);
        let r = one(&format!(
            r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/big.ics</D:href><C:calendar-data>{refs}</C:calendar-data></D:response></D:multistatus>"#
        ));
        assert_eq!(r.calendar_data.map(|d| d.len()), Some(3 * (8 << 20 >> 4)));
        let response =
            format!("<D:response><D:href>/x.ics</D:href><C:calendar-data>{ICS}</C:calendar-data></D:response>");
        let many = format!(
            r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">{}</D:multistatus>"#,
            response.repeat(20_000)
        );
        assert_eq!(parse_multistatus(&many).unwrap().len(), 20_000);
        // Deep nesting is read without recursion: an answer, not a stack overflow.
        let deep = format!(
            r#"<D:multistatus xmlns:D="DAV:">{}{}</D:multistatus>"#,
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        eprintln!("DBG {:?}", parse_multistatus(&deep));
    }

    #[test]
    fn rejects_what_is_not_a_multistatus() {
        assert!(parse_multistatus("<html><body>Login</body></html>").is_err());
        assert!(parse_multistatus("<D:multistatus xmlns:D=\"DAV:\"><D:response").is_err());
        assert!(parse_multistatus("").is_err());
    }
}
