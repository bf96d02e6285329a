//! Property tests of what slotguard reads from calendar servers: the
//! iCalendar reader ([`ics`]), the WebDAV multistatus reader
//! ([`xml::parse_multistatus`]) and how a REPORT answer becomes found events
//! ([`found_event`]).
//!
//! - Arbitrary text and near-valid documents (valid samples from the unit
//!   tests, randomly edited) never make a reader panic.
//! - Round trips: a booking written by the ics writer reads back with the
//!   same reservation id, UID, start, end, summary, description and attendee,
//!   whatever the text holds (unicode, commas, semicolons, quotes, carets,
//!   backslashes, newlines); a multistatus written in any of the styles
//!   servers use reads back with the same hrefs and calendar data, and a
//!   slotguard event inside it is found with its id and start.

use super::*;
use crate::adapters::caldav::ics::{ContentLine, ParsedEvent, parse_dtstart, parse_event, unescape_text, unfold};
use crate::domain::{Customer, ReservationId};
use crate::ports::MARKER;
use chrono::{DateTime, Utc};
use proptest::prelude::*;

const CASES: u32 = 256;

/// `CASES` cases, or `PROPTEST_CASES` for a longer run. A failure is reported
/// with its minimal input rather than saved into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- samples, taken from the unit tests of ics.rs and xml.rs --------------

const ICS_SERVER_REWRITTEN: &str = "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nEND:VTIMEZONE\nBEGIN:VEVENT\n\
    dtstart;TZID=Europe/Berlin:20261123T090000\nBEGIN:VALARM\nUID:alarm\nEND:VALARM\n\
    X-SLOTGUARD-BOOKING:rsv_demo_20261123T080000_\n 2579e728486449b88d897c1ecf3b632c\n\
    UID:u1\nEND:VEVENT\nBEGIN:VEVENT\nUID:second\nEND:VEVENT\nEND:VCALENDAR\n";

const ICS_DTSTART_FORMS: &str = "BEGIN:VEVENT\r\nDTSTART;TZID=\"Europe/Berlin\":20261025T023000\r\n\
    DTSTART;VALUE=DATE:20261123\r\nDTSTART;TZID=W. Europe Standard Time:20261123T080000\r\n\
    ATTENDEE;CN=\"a:b;c\";ROLE=CHAIR:mailto:x@y.z\r\nEND:VEVENT\r\n";

const XML_UPPER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:response>
    <D:href>/cal/a.ics</D:href>
    <D:propstat><D:prop><D:getetag>"1"</D:getetag><C:calendar-data>BEGIN:VCALENDAR
BEGIN:VEVENT
UID:a
DTSTART:20261123T080000Z
X-SLOTGUARD-BOOKING:rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c
END:VEVENT
END:VCALENDAR
</C:calendar-data></D:prop>
    <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
</D:multistatus>"#;

const XML_DEFAULT_NS: &str = r#"<multistatus xmlns="DAV:"><response><href>https://p01-caldav.icloud.com/1/calendars/w/c.ics</href><propstat><prop><calendar-data xmlns="urn:ietf:params:xml:ns:caldav"><![CDATA[BEGIN:VCALENDAR
BEGIN:VEVENT
UID:a
END:VEVENT
END:VCALENDAR
]]></calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;

const XML_ENTITIES: &str = r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/a%40b.ics</D:href><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR&#13;
SUMMARY:Tom &amp; Jerry &lt;3 &#x263A; &unknown;&#13;
END:VCALENDAR&#13;
</C:calendar-data></D:prop></D:propstat></D:response></D:multistatus>"#;

const XML_COMMENTS: &str = r#"<?xml version="1.0"?><!DOCTYPE multistatus [<!ENTITY x "y">]><!-- a <comment> -->
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:response><D:href>/1.ics</D:href><D:propstat><D:prop><C:calendar-data/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
<D:response><D:href attr='a>b'>/2.ics</D:href></D:response>
</D:multistatus>"#;

const XML_NESTED_HREF: &str = r#"<D:multistatus xmlns:D="DAV:" xmlns:X="urn:example"><D:response><X:href>/wrong</X:href><D:propstat><D:prop><D:owner><D:href>/principal/</D:href></D:owner></D:prop></D:propstat><D:href>/right.ics</D:href></D:response></D:multistatus>"#;

fn collection() -> reqwest::Url {
    parse_collection("http://h/cal/x/").unwrap()
}

// ---- near-valid documents: samples with random edits ----------------------

/// Fragments that matter to the readers, to splice into documents.
const TOKENS: &[&str] = &[
    "\r\n",
    "\n",
    "\r",
    " ",
    "\t",
    ":",
    ";",
    ",",
    "=",
    "\"",
    "'",
    "\\",
    "^",
    "<",
    ">",
    "/",
    "&",
    "&#",
    "&#x",
    "&amp;",
    "&#13;",
    "&#x110000;",
    "&#0;",
    "]]>",
    "<![CDATA[",
    "<!--",
    "-->",
    "<?",
    "?>",
    "<!",
    "</",
    "/>",
    "<D:",
    "</D:",
    "xmlns=\"DAV:\"",
    "xmlns:D=\"DAV:\"",
    "xmlns:C=\"urn:ietf:params:xml:ns:caldav\"",
    "<D:response>",
    "</D:response>",
    "<D:href>",
    "</D:href>",
    "<C:calendar-data>",
    "</C:calendar-data>",
    "BEGIN:VEVENT",
    "END:VEVENT",
    "BEGIN:VALARM",
    "END:VALARM",
    "DTSTART:",
    "DTSTART;TZID=",
    "DTSTART;TZID=/Europe/Berlin:",
    "20261025T023000",
    "20260329T023000Z",
    "X-SLOTGUARD-BOOKING:",
    "UID:",
    "é",
    "😀",
    "\u{0}",
    "\u{feff}",
    "\u{2028}",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    Duplicate(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    Case(prop::sample::Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<prop::sample::Index>();
    let insert = prop_oneof![4 => prop::sample::select(TOKENS).prop_map(str::to_owned), 1 => ".{0,6}"];
    prop_oneof![
        2 => (at.clone(), 1usize..12).prop_map(|(i, n)| Edit::Delete(i, n)),
        4 => (at.clone(), insert).prop_map(|(i, s)| Edit::Insert(i, s)),
        1 => (at.clone(), 1usize..40).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        1 => at.clone().prop_map(Edit::Truncate),
        1 => (at.clone(), at.clone()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        1 => (at, 1usize..20).prop_map(|(i, n)| Edit::Case(i, n)),
    ]
}

/// Applies edits at character positions (never inside a UTF-8 sequence).
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len();
        match e {
            Edit::Delete(i, n) => {
                let at = i.index(len + 1);
                chars.drain(at..(at + n).min(len));
            }
            Edit::Insert(i, s) => {
                let at = i.index(len + 1);
                chars.splice(at..at, s.chars());
            }
            Edit::Duplicate(i, n) => {
                let at = i.index(len + 1);
                let copy: Vec<char> = chars[at..(at + n).min(len)].to_vec();
                chars.splice(at..at, copy);
            }
            Edit::Truncate(i) => chars.truncate(i.index(len + 1)),
            Edit::SwapLines(a, b) => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<&str> = text.split('\n').collect();
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
                chars = lines.join("\n").chars().collect();
            }
            Edit::Case(i, n) => {
                let at = i.index(len + 1);
                for c in &mut chars[at..(at + n).min(len)] {
                    *c = if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn ics_sample() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(ICS_SERVER_REWRITTEN.to_owned()),
        Just(ICS_DTSTART_FORMS.to_owned()),
        booking_event().prop_map(|(event, dtstamp)| ics::booking_calendar(&event, dtstamp)),
    ]
}

fn xml_sample() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![XML_UPPER, XML_DEFAULT_NS, XML_ENTITIES, XML_COMMENTS, XML_NESTED_HREF])
            .prop_map(str::to_owned),
        multistatus().prop_map(|(doc, _)| doc),
    ]
}

/// Reads an iCalendar text the way every caller does, checking only that nothing panics.
fn read_ics(text: &str) {
    let _ = parse_event(text);
    for line in unfold(text) {
        if let Some(cl) = ContentLine::parse(&line) {
            let _ = parse_dtstart(&cl);
            let _ = unescape_text(&cl.value);
        }
    }
}

/// Reads a REPORT answer the way the adapter does, checking only that nothing panics.
fn read_report(text: &str) {
    if let Ok(responses) = xml::parse_multistatus(text) {
        for r in responses {
            if let Some(data) = &r.calendar_data {
                read_ics(data);
            }
            let _ = found_event(&collection(), r);
        }
    }
}

// ---- writers for the round trips -------------------------------------------

/// Text with everything an event may carry: any unicode, and the characters
/// iCalendar escapes or folds around.
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        ",", ";", ":", "\\", "\\n", "\\,", "\"", "^", "^n", "^'", "\n", "\r\n", "\r", " ", "\t", "é", "😀", "Ø", "ß",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop_oneof![special, "[a-zA-Z0-9 ]{1,8}", "\\PC{1,4}"], 0..40).prop_map(|p| p.concat()),
        "\\PC{60,300}",
    ]
}

fn customer() -> impl Strategy<Value = Customer> {
    let name = prop_oneof![
        "\\PC{1,60}",
        prop::sample::select(vec!["Zoë; Ørsted, \"Jr.\" ^", "a^nb^'c^^", "Smith, J: \"Jo\" ^", "x\\y;z,w", "李小龍"])
            .prop_map(str::to_owned),
        "[\\PC&&[^\\s]]{1,10}( [\\PC&&[^\\s]]{1,10}){0,20}",
    ];
    let email = prop_oneof![
        Just("ada@example.com".to_owned()),
        "[a-z0-9.+_'!#$%&*=?^`{|}~\\\\:-]{1,30}@[a-z0-9-]{1,10}\\.[a-z]{2,6}",
        "\\pL{1,10}@\\pL{1,10}\\.[a-z]{2,4}",
    ];
    (name, email).prop_filter_map("a valid customer", |(name, email)| Customer::parse(&name, &email).ok())
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let from = DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z").unwrap().timestamp();
    let to = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").unwrap().timestamp();
    prop_oneof![
        4 => (1_700_000_000i64..2_000_000_000).prop_map(|s| s / 60 * 60),
        1 => from..=to,
    ]
    .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

fn reservation_id() -> impl Strategy<Value = ReservationId> {
    ("[a-z0-9][a-z0-9-]{0,20}", instant(), "[0-9a-f]{32}").prop_map(|(resource, start, random)| {
        let id = format!("rsv_{resource}_{}_{random}", start.format("%Y%m%dT%H%M%S"));
        ReservationId::parse(&id).unwrap_or_else(|| panic!("{id} should parse"))
    })
}

fn booking_event() -> impl Strategy<Value = (BookingEvent, DateTime<Utc>)> {
    (reservation_id(), text(), instant(), 5i64..=720, customer(), text(), instant(), any::<u32>()).prop_map(
        |(reservation_id, summary, start, minutes, customer, description, dtstamp, sequence)| {
            let end = start + chrono::Duration::minutes(minutes);
            (BookingEvent { reservation_id, summary, start, end, customer, description, sequence }, dtstamp)
        },
    )
}

/// How a server writes the DAV: and CalDAV namespaces.
#[derive(Debug, Clone, Copy)]
enum Style {
    Prefixed(&'static str, &'static str),
    Defaults,
    Undeclared,
}

fn style() -> impl Strategy<Value = Style> {
    prop::sample::select(vec![
        Style::Prefixed("D", "C"),
        Style::Prefixed("d", "cal"),
        Style::Prefixed("ns0", "ns1"),
        Style::Defaults,
        Style::Undeclared,
    ])
}

/// How a text is carried in the XML.
#[derive(Debug, Clone, Copy)]
enum Carry {
    Entities,
    /// Also every CR and non-ASCII character as a character reference.
    CharRefs,
    Cdata,
}

fn carry(s: &str, how: Carry) -> String {
    match how {
        Carry::Cdata if !s.contains("]]>") => format!("<![CDATA[{s}]]>"),
        Carry::CharRefs => s
            .chars()
            .map(|c| match c {
                '&' => "&amp;".to_owned(),
                '<' => "&lt;".to_owned(),
                '>' => "&gt;".to_owned(),
                '"' => "&quot;".to_owned(),
                '\'' => "&apos;".to_owned(),
                '\r' => "&#13;".to_owned(),
                c if !c.is_ascii() => format!("&#x{:X};", u32::from(c)),
                c => c.to_string(),
            })
            .collect(),
        _ => s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
    }
}

/// One `<response>`: its href and calendar data.
#[derive(Debug, Clone)]
struct Entry {
    href: String,
    data: Option<String>,
    /// The reservation id and start of the booking `data` was written for.
    booking: Option<(ReservationId, DateTime<Utc>)>,
    carry: Carry,
    nested_href: bool,
    self_closing_empty: bool,
}

fn entry() -> impl Strategy<Value = Entry> {
    let href = prop_oneof![
        3 => "/cal/[a-z0-9%@._-]{1,20}\\.ics",
        1 => "https://[a-z.]{1,12}/[\\PC]{0,20}",
        1 => any::<String>(),
    ];
    let data = prop_oneof![
        1 => Just((None, None)),
        3 => booking_event().prop_map(|(e, t)| {
            (Some(ics::booking_calendar(&e, t)), Some((e.reservation_id.clone(), e.start)))
        }),
        2 => any::<String>().prop_map(|s| (Some(s), None)),
    ];
    let carry = prop::sample::select(vec![Carry::Entities, Carry::CharRefs, Carry::Cdata]);
    (href, data, carry, any::<bool>(), any::<bool>()).prop_map(
        |(href, (data, booking), carry, nested_href, self_closing_empty)| Entry {
            href,
            data,
            booking,
            carry,
            nested_href,
            self_closing_empty,
        },
    )
}

/// A multistatus body, the responses it must read back as, and the booking
/// each of those carries when it was written by slotguard.
type Expected = Vec<(DavResponse, Option<(ReservationId, DateTime<Utc>)>)>;

fn multistatus() -> impl Strategy<Value = (String, Expected)> {
    (style(), prop::collection::vec(entry(), 0..5), any::<bool>()).prop_map(|(style, entries, prolog)| {
        let (d, c) = match style {
            Style::Prefixed(d, c) => (format!("{d}:"), format!("{c}:")),
            Style::Defaults => (String::new(), String::new()),
            Style::Undeclared => ("D:".to_owned(), "C:".to_owned()),
        };
        let root_decls = match style {
            Style::Prefixed(dp, cp) => format!(r#" xmlns:{dp}="DAV:" xmlns:{cp}="urn:ietf:params:xml:ns:caldav""#),
            Style::Defaults => r#" xmlns="DAV:""#.to_owned(),
            Style::Undeclared => String::new(),
        };
        let data_decl = match style {
            Style::Defaults => r#" xmlns="urn:ietf:params:xml:ns:caldav""#,
            _ => "",
        };
        let mut doc = String::new();
        if prolog {
            doc.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- generated -->\n");
        }
        doc.push_str(&format!("<{d}multistatus{root_decls}>\n"));
        let mut expected = Vec::new();
        for e in &entries {
            doc.push_str(&format!("<{d}response>"));
            if e.nested_href {
                doc.push_str(&format!(
                    "<{d}propstat><{d}prop><{d}owner><{d}href>/principal/</{d}href></{d}owner></{d}prop></{d}propstat>"
                ));
            }
            doc.push_str(&format!("<{d}href>{}</{d}href>", carry(&e.href, e.carry)));
            doc.push_str(&format!("<{d}propstat><{d}prop><{d}getetag>\"1\"</{d}getetag>"));
            match &e.data {
                Some(data) => {
                    doc.push_str(&format!("<{c}calendar-data{data_decl}>{}</{c}calendar-data>", carry(data, e.carry)))
                }
                None if e.self_closing_empty => doc.push_str(&format!("<{c}calendar-data{data_decl}/>")),
                None => {}
            }
            doc.push_str(&format!("</{d}prop><{d}status>HTTP/1.1 200 OK</{d}status></{d}propstat></{d}response>\n"));
            let href = e.href.trim();
            if !href.is_empty() {
                let calendar_data = e.data.clone().filter(|d| !d.trim().is_empty());
                expected.push((DavResponse { href: href.to_owned(), calendar_data }, e.booking.clone()));
            }
        }
        doc.push_str(&format!("</{d}multistatus>"));
        (doc, expected)
    })
}

fn newlines_as_lf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ics_reader_never_panics_on_arbitrary_text(text in prop_oneof![any::<String>(), "[A-Z:;=\"\\r\\n \\t,0-9TZ/-]{0,200}"]) {
        read_ics(&text);
    }

    #[test]
    fn ics_reader_never_panics_on_edited_samples(sample in ics_sample(), edits in prop::collection::vec(edit(), 1..8)) {
        read_ics(&mutate(&sample, &edits));
    }

    #[test]
    fn xml_reader_never_panics_on_arbitrary_text(text in prop_oneof![any::<String>(), "[<>/!?:=\"'a-zA-Z&#;\\[\\] -]{0,200}"]) {
        read_report(&text);
    }

    #[test]
    fn xml_reader_never_panics_on_edited_samples(sample in xml_sample(), edits in prop::collection::vec(edit(), 1..8)) {
        read_report(&mutate(&sample, &edits));
    }

    /// A booking written as iCalendar reads back intact.
    #[test]
    fn a_written_booking_reads_back_intact((event, dtstamp) in booking_event()) {
        let text = ics::booking_calendar(&event, dtstamp);
        // Content lines of at most 75 octets, CRLF-terminated, no bare CR or LF.
        prop_assert!(text.ends_with("\r\n"));
        for physical in text.strip_suffix("\r\n").unwrap().split("\r\n") {
            prop_assert!(physical.len() <= 75, "{} octets: {:?}", physical.len(), physical);
            prop_assert!(!physical.contains(['\r', '\n']), "bare line break in {:?}", physical);
        }
        let rid = event.reservation_id.as_str();
        prop_assert_eq!(
            parse_event(&text),
            Some(ParsedEvent {
                uid: Some(ics::uid(&event.reservation_id)),
                booking: Some(rid.to_owned()),
                start: Some(event.start),
                end: Some(event.end),
            })
        );
        // Each property appears once: no value can start a property of its own.
        let lines: Vec<ContentLine> = unfold(&text).iter().map(|l| ContentLine::parse(l).unwrap()).collect();
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        prop_assert_eq!(
            names,
            ["BEGIN", "VERSION", "PRODID", "CALSCALE", "BEGIN", "UID", "DTSTAMP", "DTSTART", "DTEND", "SEQUENCE",
             "SUMMARY", "DESCRIPTION", "ATTENDEE", "STATUS", "TRANSP", MARKER, "END", "END"]
        );
        let line = |name: &str| lines.iter().find(|l| l.name == name).unwrap();
        prop_assert_eq!(parse_dtstart(line("DTEND")), Some(event.end));
        prop_assert_eq!(parse_dtstart(line("DTSTAMP")), Some(dtstamp));
        prop_assert_eq!(line("SEQUENCE").value.clone(), event.sequence.to_string());
        prop_assert_eq!(unescape_text(&line("SUMMARY").value), newlines_as_lf(&event.summary));
        prop_assert_eq!(unescape_text(&line("DESCRIPTION").value), newlines_as_lf(&event.description));
        let attendee = line("ATTENDEE");
        prop_assert_eq!(attendee.value.clone(), format!("mailto:{}", event.customer.email.as_str()));
        prop_assert_eq!(attendee.param("CN").map(ics::decode_param_value), Some(event.customer.name.clone()));
        prop_assert_eq!(attendee.param("ROLE"), Some("REQ-PARTICIPANT"));
    }

    /// A multistatus in any server's style reads back with its hrefs and
    /// calendar data, and the slotguard events in it on the collection's
    /// origin are found.
    #[test]
    fn a_written_multistatus_reads_back((doc, expected) in multistatus()) {
        let responses = xml::parse_multistatus(&doc);
        let expected_responses: Vec<DavResponse> = expected.iter().map(|(r, _)| r.clone()).collect();
        prop_assert_eq!(responses.as_ref(), Ok(&expected_responses), "document:\n{}", doc);
        for (response, booking) in expected {
            // An href on another origin is skipped like one that does not parse.
            let joined = collection().join(&response.href).ok().filter(|u| u.origin() == collection().origin());
            // The generated calendar data may or may not carry a DTEND: the end is not compared here.
            let found = found_event(&collection(), response).map(|f| FoundEvent { end: None, ..f });
            match (booking, joined) {
                (Some((reservation_id, start)), Some(url)) => prop_assert_eq!(
                    found,
                    Some(FoundEvent { reservation_id, event_ref: url.to_string(), start, end: None })
                ),
                (_, None) => prop_assert_eq!(found, None),
                // Arbitrary calendar data: only that reading it does not panic.
                (None, Some(_)) => {}
            }
        }
    }
}
