//! Just enough XML to read a WebDAV multistatus (RFC 4918 §13) answering a
//! CalDAV `calendar-query`: each `<response>`'s `<href>` and `<calendar-data>`.
//!
//! Servers differ in everything XML allows: `D:`, `d:`, `ns0:` or a default
//! namespace for `DAV:`, CDATA or entity-escaped calendar data, `&#13;` for
//! carriage returns, comments, a DOCTYPE. Elements are therefore matched by
//! namespace URI and local name after resolving prefixes, never by prefix. An
//! element whose prefix is undeclared is matched by local name alone, which
//! keeps a sloppy server readable without letting a declared foreign
//! namespace pass for `DAV:`.
//!
//! This is not a general XML parser: it does not validate, expand DTD
//! entities or keep attributes other than namespace declarations.

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
    at: usize,
    what: &'static str,
}

/// Parses a multistatus body into its responses.
pub fn parse_multistatus(xml: &str) -> Result<Vec<DavResponse>, XmlError> {
    let mut collector = Collector::default();
    Tokenizer { xml, pos: 0 }.run(&mut collector)?;
    if !collector.saw_multistatus {
        return Err(XmlError { at: 0, what: "no DAV:multistatus element" });
    }
    Ok(collector.responses)
}

/// An element name after namespace resolution. `ns` is `None` when the prefix
/// (or, without a prefix, a default namespace) was never declared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    ns: Option<String>,
    local: String,
}

impl Name {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref().is_none_or(|n| n == ns)
    }
}

/// What the tokenizer reports.
trait Sink {
    fn start(&mut self, name: &Name);
    fn end(&mut self, name: &Name);
    fn text(&mut self, text: &str);
}

/// Walks the document, resolving namespaces with a stack of declarations.
struct Tokenizer<'a> {
    xml: &'a str,
    pos: usize,
}

/// The namespace declarations of one open element, and its qualified name.
struct Scope {
    qname: String,
    name: Name,
    decls: Vec<(String, String)>,
}

impl Tokenizer<'_> {
    fn run(&mut self, sink: &mut impl Sink) -> Result<(), XmlError> {
        let mut open: Vec<Scope> = Vec::new();
        while self.pos < self.xml.len() {
            let rest = &self.xml[self.pos..];
            let Some(lt) = rest.find('<') else {
                sink.text(&decode_entities(rest));
                break;
            };
            if lt > 0 {
                sink.text(&decode_entities(&rest[..lt]));
            }
            self.pos += lt;
            let rest = &self.xml[self.pos..];
            if rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
                let end = cdata.find("]]>").ok_or(self.error("unterminated CDATA"))?;
                sink.text(&cdata[..end]);
                self.pos += "<![CDATA[".len() + end + "]]>".len();
            } else if rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if rest.starts_with("<!") {
                self.skip_declaration()?;
            } else if rest.starts_with("</") {
                self.end_tag(&mut open, sink)?;
            } else {
                self.start_tag(&mut open, sink)?;
            }
        }
        Ok(())
    }

    fn error(&self, what: &'static str) -> XmlError {
        XmlError { at: self.pos, what }
    }

    fn skip_past(&mut self, end: &str) -> Result<(), XmlError> {
        let found = self.xml[self.pos..].find(end).ok_or(self.error("unterminated markup"))?;
        self.pos += found + end.len();
        Ok(())
    }

    /// `<!DOCTYPE ...>`, possibly with an internal subset in brackets.
    fn skip_declaration(&mut self) -> Result<(), XmlError> {
        let mut depth = 0usize;
        for (i, c) in self.xml[self.pos..].char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '>' if depth == 0 => {
                    self.pos += i + 1;
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(self.error("unterminated declaration"))
    }

    fn end_tag(&mut self, open: &mut Vec<Scope>, sink: &mut impl Sink) -> Result<(), XmlError> {
        let inner_end = self.xml[self.pos..].find('>').ok_or(self.error("unterminated end tag"))?;
        let qname = self.xml[self.pos + 2..self.pos + inner_end].trim();
        // Close up to the matching element, tolerating a server that forgot
        // to close an inner one; an end tag nothing matches is ignored.
        if let Some(idx) = open.iter().rposition(|s| s.qname == qname) {
            while open.len() > idx {
                if let Some(scope) = open.pop() {
                    sink.end(&scope.name);
                }
            }
        }
        self.pos += inner_end + 1;
        Ok(())
    }

    fn start_tag(&mut self, open: &mut Vec<Scope>, sink: &mut impl Sink) -> Result<(), XmlError> {
        let (inner, consumed) = tag_body(&self.xml[self.pos..]).ok_or(self.error("unterminated start tag"))?;
        let (inner, self_closing) = match inner.strip_suffix('/') {
            Some(inner) => (inner, true),
            None => (inner, false),
        };
        let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
        let qname = &inner[1..name_end];
        if qname.is_empty() {
            return Err(self.error("empty element name"));
        }
        let decls = namespace_declarations(&inner[name_end..]);
        let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
        let ns = decls
            .iter()
            .rev()
            .chain(open.iter().rev().flat_map(|s| s.decls.iter().rev()))
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.clone())
            .filter(|uri| !uri.is_empty());
        let scope = Scope { qname: qname.to_owned(), name: Name { ns, local: local.to_owned() }, decls };
        sink.start(&scope.name);
        if self_closing {
            sink.end(&scope.name);
        } else {
            open.push(scope);
        }
        self.pos += consumed;
        Ok(())
    }
}

/// The text of a tag from `<` up to (excluding) its `>`, and the bytes it
/// spans; a `>` inside a quoted attribute value does not end the tag.
fn tag_body(s: &str) -> Option<(&str, usize)> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some((&s[..i], i + 1)),
            _ => {}
        }
    }
    None
}

/// The `xmlns` and `xmlns:p` attributes of a tag, as (prefix, uri) pairs.
fn namespace_declarations(attrs: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = attrs;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else { break };
        let Some(end) = after[1..].find(q) else { break };
        let value = decode_entities(&after[1..1 + end]);
        if name == "xmlns" {
            out.push((String::new(), value));
        } else if let Some(prefix) = name.strip_prefix("xmlns:") {
            out.push((prefix.to_owned(), value));
        }
        rest = &after[1 + end + 1..];
    }
    out
}

/// Replaces the five predefined entities and character references; anything
/// else is left as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 12).and_then(|semi| Some((entity(&rest[1..semi])?, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            char::from_u32(code)
        }
    }
}

/// Gathers `<response>`s: the `<href>` directly inside each, and the text of
/// the `<calendar-data>` anywhere inside it.
#[derive(Default)]
struct Collector {
    saw_multistatus: bool,
    /// Local names of the open elements, to tell a response's own `<href>`
    /// from hrefs nested in properties.
    path: Vec<Name>,
    current: Option<Partial>,
    capture: Capture,
    responses: Vec<DavResponse>,
}

#[derive(Default)]
struct Partial {
    href: Option<String>,
    calendar_data: Option<String>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Capture {
    #[default]
    Nothing,
    Href,
    CalendarData,
}

impl Sink for Collector {
    fn start(&mut self, name: &Name) {
        let parent_is_response = self.path.last().is_some_and(|p| p.is(DAV, "response"));
        if name.is(DAV, "multistatus") {
            self.saw_multistatus = true;
        } else if name.is(DAV, "response") {
            self.current = Some(Partial::default());
        } else if let Some(current) = self.current.as_mut() {
            if name.is(DAV, "href") && parent_is_response && current.href.is_none() {
                current.href = Some(String::new());
                self.capture = Capture::Href;
            } else if name.is(CALDAV, "calendar-data") {
                current.calendar_data = Some(String::new());
                self.capture = Capture::CalendarData;
            }
        }
        self.path.push(name.clone());
    }

    fn end(&mut self, name: &Name) {
        self.path.pop();
        if matches!(self.capture, Capture::Href) && name.is(DAV, "href")
            || matches!(self.capture, Capture::CalendarData) && name.is(CALDAV, "calendar-data")
        {
            self.capture = Capture::Nothing;
        }
        if name.is(DAV, "response")
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
            Capture::Href => current.href.as_mut(),
            Capture::CalendarData => current.calendar_data.as_mut(),
            Capture::Nothing => None,
        };
        if let Some(target) = target {
            target.push_str(text);
        }
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

    #[test]
    fn rejects_what_is_not_a_multistatus() {
        assert!(parse_multistatus("<html><body>Login</body></html>").is_err());
        assert!(parse_multistatus("<D:multistatus xmlns:D=\"DAV:\"><D:response").is_err());
        assert!(parse_multistatus("").is_err());
    }
}
