//! iCalendar (RFC 5545) text for booking events, and the little reading of it
//! that listing needs.
//!
//! Writing: every content line is escaped and folded at 75 octets with CRLF,
//! on UTF-8 character boundaries, so a customer called "Zoë; Ørsted, Jr." or a
//! 300-character summary arrives intact on any server.
//!
//! Reading: [`parse_event`] unfolds the text and reads the first VEVENT's UID,
//! DTSTART and [`MARKER`]. Servers return events rewritten in their own style
//! (LF line ends, a `TZID` instead of UTC), so it reads those too.

use crate::domain::{ReservationId, Zone};
use crate::ports::{BookingEvent, MARKER};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The PRODID of every calendar object slotguard writes.
pub const PRODID: &str = "-//slotguard//slotguard booking//EN";

/// Longest content line in octets, excluding the CRLF (RFC 5545 §3.1).
const MAX_LINE_OCTETS: usize = 75;

/// The UID of a booking's event: `{reservation id}@slotguard`.
pub fn uid(reservation_id: &ReservationId) -> String {
    format!("{reservation_id}@slotguard")
}

/// The complete VCALENDAR object for a booking. `dtstamp` is when it was
/// written (RFC 5545 requires it; it plays no part in idempotency, which
/// comes from the resource name and UID); the booking's version is its
/// `SEQUENCE`, so attendees' clients take a rescheduled event as an update.
pub fn booking_calendar(event: &BookingEvent, dtstamp: DateTime<Utc>) -> String {
    let rid = &event.reservation_id;
    let attendee = format!(
        "ATTENDEE;CN={};ROLE=REQ-PARTICIPANT:mailto:{}",
        param_value(&event.customer.name),
        event.customer.email.as_str()
    );
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        format!("PRODID:{PRODID}"),
        "CALSCALE:GREGORIAN".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", escape_text(&uid(rid))),
        format!("DTSTAMP:{}", utc_datetime(dtstamp)),
        format!("DTSTART:{}", utc_datetime(event.start)),
        format!("DTEND:{}", utc_datetime(event.end)),
        format!("SEQUENCE:{}", event.sequence),
        format!("SUMMARY:{}", escape_text(&event.summary)),
        format!("DESCRIPTION:{}", escape_text(&event.description)),
        attendee,
        "STATUS:CONFIRMED".to_owned(),
        "TRANSP:OPAQUE".to_owned(),
        format!("{MARKER}:{}", escape_text(rid.as_str())),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    lines.iter().map(|l| fold_line(l)).collect()
}

/// `YYYYMMDDTHHMMSSZ`, the UTC form of DATE-TIME.
pub fn utc_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and
/// newlines (CRLF, CR or LF all become `\n`).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_text`]; an unknown escape keeps its character.
pub fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A parameter value (RFC 5545 §3.2), always quoted: a name may hold `:`,
/// `;` or `,`. Parameters have no backslash escapes; the characters a quoted
/// value cannot hold use RFC 6868's caret encoding (`^'` for `"`, `^n` for a
/// newline, `^^` for `^`), and other control characters are dropped.
pub fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '^' => out.push_str("^^"),
            '"' => out.push_str("^'"),
            '\n' => out.push_str("^n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The text a [`param_value`] stands for, once its quotes are gone: RFC
/// 6868's caret encoding undone (`^'` → `"`, `^n` → newline, `^^` → `^`;
/// any other caret is kept as it is).
pub fn decode_param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '^' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\'') => out.push('"'),
            Some('^') => out.push('^'),
            Some(other) => out.extend(['^', other]),
            None => out.push('^'),
        }
    }
    out
}

/// Folds one content line into CRLF-terminated physical lines of at most 75
/// octets; continuation lines start with a space, which counts toward the 75.
/// Cuts only between characters, never inside a UTF-8 sequence.
pub fn fold_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut room = MAX_LINE_OCTETS;
    for c in line.chars() {
        if c.len_utf8() > room {
            out.push_str("\r\n ");
            room = MAX_LINE_OCTETS - 1;
        }
        out.push(c);
        room -= c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// Joins folded lines (RFC 5545 §3.1): a line break followed by a space or
/// tab continues the previous line. Accepts CRLF, LF and CR line ends, since
/// servers and XML parsers do not all keep the CR.
pub fn unfold(text: &str) -> Vec<String> {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<String> = Vec::new();
    for raw in normalized.split('\n') {
        match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ if raw.trim().is_empty() => {}
            _ => lines.push(raw.to_owned()),
        }
    }
    lines
}

/// One unfolded content line split into name, parameters and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLine {
    /// Upper-cased property name.
    pub name: String,
    /// Parameters as (upper-cased name, value without quotes).
    pub params: Vec<(String, String)>,
    /// The raw value, still escaped.
    pub value: String,
}

impl ContentLine {
    /// Splits `NAME;P=V;Q="x:y":value`; the value starts at the first colon
    /// outside double quotes. `None` for a line without a colon.
    pub fn parse(line: &str) -> Option<Self> {
        let mut in_quotes = false;
        let colon = line.char_indices().find_map(|(i, c)| {
            match c {
                '"' => in_quotes = !in_quotes,
                ':' if !in_quotes => return Some(i),
                _ => {}
            }
            None
        })?;
        let (head, value) = (&line[..colon], &line[colon + 1..]);
        let mut parts = split_unquoted(head, ';').into_iter();
        let name = parts.next()?.trim().to_ascii_uppercase();
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_ascii_uppercase(), v.trim().trim_matches('"').to_owned()))
            })
            .collect();
        Some(Self { name, params, value: value.to_owned() })
    }

    /// The value of parameter `name` (upper case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// What listing reads from a calendar object: its first VEVENT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedEvent {
    pub uid: Option<String>,
    /// The [`MARKER`] value, unescaped: the reservation id slotguard wrote.
    pub booking: Option<String>,
    /// DTSTART as an instant, when it could be read (see [`parse_dtstart`]).
    pub start: Option<DateTime<Utc>>,
    /// DTEND, read the same way.
    pub end: Option<DateTime<Utc>>,
}

/// Reads the first VEVENT of a calendar object; `None` if it has none.
pub fn parse_event(text: &str) -> Option<ParsedEvent> {
    let mut event = None;
    let mut depth_in_event = 0usize;
    for line in unfold(text) {
        let Some(cl) = ContentLine::parse(line.trim_end()) else { continue };
        let value_upper = cl.value.trim().to_ascii_uppercase();
        match (cl.name.as_str(), event.as_mut()) {
            ("BEGIN", None) if value_upper == "VEVENT" => event = Some(ParsedEvent::default()),
            // A VALARM inside the event has no properties we want.
            ("BEGIN", Some(_)) => depth_in_event += 1,
            ("END", Some(_)) if depth_in_event > 0 => depth_in_event -= 1,
            ("END", Some(_)) if value_upper == "VEVENT" => break,
            (_, Some(ev)) if depth_in_event == 0 => match cl.name.as_str() {
                "UID" => ev.uid = Some(unescape_text(cl.value.trim())),
                "DTSTART" => ev.start = parse_dtstart(&cl),
                "DTEND" => ev.end = parse_dtstart(&cl),
                name if name == MARKER => ev.booking = Some(unescape_text(cl.value.trim())),
                _ => {}
            },
            _ => {}
        }
    }
    event
}

/// Reads DTSTART (or DTEND) in any of its forms: UTC (`...Z`), local time with a `TZID`
/// known to the IANA database, floating time (taken as UTC: slotguard never
/// writes it, and a server that drops the zone most likely kept UTC digits),
/// or a DATE (midnight UTC). `None` for anything else, e.g. a Windows zone name.
pub fn parse_dtstart(line: &ContentLine) -> Option<DateTime<Utc>> {
    let value = line.value.trim();
    if let Some(utc) = value.strip_suffix('Z').or_else(|| value.strip_suffix('z')) {
        return NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok().map(|t| t.and_utc());
    }
    if let Ok(local) = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S") {
        return match line.param("TZID") {
            Some(tzid) => {
                let tz: Zone = tzid.trim_start_matches('/').parse().ok()?;
                // A time skipped by a DST change has no instant; a repeated
                // one takes its first, as the slot grid does.
                tz.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc))
            }
            None => Some(local.and_utc()),
        };
    }
    NaiveDate::parse_from_str(value, "%Y%m%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Customer;

    fn rid() -> ReservationId {
        ReservationId::parse("rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn booking(name: &str, summary: &str) -> BookingEvent {
        BookingEvent {
            reservation_id: rid(),
            summary: summary.to_owned(),
            start: at("2026-11-23T08:00:00Z"),
            end: at("2026-11-23T08:30:00Z"),
            customer: Customer::parse(name, "ada@example.com").unwrap(),
            description: format!("Booked with slotguard. Reservation {}", rid()),
            sequence: 0,
        }
    }

    #[test]
    fn escapes_text_values() {
        assert_eq!(escape_text(r"a\b;c,d"), r"a\\b\;c\,d");
        assert_eq!(escape_text("one\r\ntwo\nthree\rfour"), r"one\ntwo\nthree\nfour");
        assert_eq!(escape_text("plain: colons stay"), "plain: colons stay");
        for s in [r"a\b;c,d", "x\ny", r"\n literal", "Zoë; Ørsted, Jr."] {
            let round = unescape_text(&escape_text(s));
            assert_eq!(round, s.replace("\r\n", "\n"));
        }
    }

    #[test]
    fn quotes_parameter_values_with_caret_encoding() {
        assert_eq!(param_value("Ada Lovelace"), "\"Ada Lovelace\"");
        assert_eq!(param_value("Smith, J: \"Jo\" ^"), "\"Smith, J: ^'Jo^' ^^\"");
    }

    #[test]
    fn short_lines_are_not_folded() {
        assert_eq!(fold_line("SUMMARY:hi"), "SUMMARY:hi\r\n");
        let exactly = "X".repeat(75);
        assert_eq!(fold_line(&exactly), format!("{exactly}\r\n"));
    }

    #[test]
    fn folds_at_75_octets_with_a_leading_space() {
        let line = format!("DESCRIPTION:{}", "a".repeat(200));
        let folded = fold_line(&line);
        let physical: Vec<&str> = folded.strip_suffix("\r\n").unwrap().split("\r\n").collect();
        assert_eq!(physical[0].len(), 75);
        assert!(physical[1..].iter().all(|l| l.starts_with(' ') && l.len() <= 75));
        assert_eq!(physical[1].len(), 75);
        assert_eq!(unfold(&folded), vec![line]);
    }

    #[test]
    fn folds_only_between_utf8_characters() {
        // 'é' is 2 octets, '😀' 4: after the 8-octet "SUMMARY:" a cut at
        // exactly 75 octets would land inside a character.
        for filler in ["é", "😀", "aé😀"] {
            let line = format!("SUMMARY:{}", filler.repeat(100));
            let folded = fold_line(&line);
            let physical: Vec<&str> = folded.strip_suffix("\r\n").unwrap().split("\r\n").collect();
            assert!(physical.len() > 2, "{filler}: expected several lines");
            for l in &physical {
                assert!(l.len() <= 75, "{} octets: {l:?}", l.len());
            }
            // Only the last line may be short: a cut wastes at most 3 octets.
            for l in &physical[..physical.len() - 1] {
                assert!(l.len() >= 72, "wasteful fold: {} octets", l.len());
            }
            assert_eq!(unfold(&folded), vec![line]);
        }
    }

    #[test]
    fn writes_a_complete_event() {
        let text = booking_calendar(&booking("Ada Lovelace", "Demo call: Ada"), at("2026-11-21T10:00:00Z"));
        assert!(text.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:"));
        assert!(text.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in {text:?}");
        let lines = unfold(&text);
        for expected in [
            "UID:rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c@slotguard",
            "DTSTAMP:20261121T100000Z",
            "DTSTART:20261123T080000Z",
            "DTEND:20261123T083000Z",
            "SEQUENCE:0",
            "SUMMARY:Demo call: Ada",
            r"DESCRIPTION:Booked with slotguard. Reservation rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c",
            "ATTENDEE;CN=\"Ada Lovelace\";ROLE=REQ-PARTICIPANT:mailto:ada@example.com",
            "X-SLOTGUARD-BOOKING:rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c",
        ] {
            assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in {lines:#?}");
        }
    }

    #[test]
    fn hostile_names_and_summaries_stay_inside_their_property() {
        let event = booking("Zoë; Ørsted, \"Jr.\" ^", &format!("Call; with, {}\\", "long ".repeat(30)));
        let text = booking_calendar(&event, at("2026-11-21T10:00:00Z"));
        let lines = unfold(&text);
        let summary = lines.iter().find_map(|l| ContentLine::parse(l).filter(|c| c.name == "SUMMARY")).unwrap();
        assert_eq!(unescape_text(&summary.value), event.summary);
        let attendee = lines.iter().find_map(|l| ContentLine::parse(l).filter(|c| c.name == "ATTENDEE")).unwrap();
        assert_eq!(attendee.value, "mailto:ada@example.com");
        assert_eq!(attendee.param("CN"), Some("Zoë; Ørsted, ^'Jr.^' ^^"));
        assert_eq!(attendee.param("ROLE"), Some("REQ-PARTICIPANT"));
    }

    #[test]
    fn parses_back_what_it_writes() {
        let text = booking_calendar(&booking("Ada", "Demo"), at("2026-11-21T10:00:00Z"));
        let parsed = parse_event(&text).unwrap();
        assert_eq!(parsed.booking.as_deref(), Some(rid().as_str()));
        assert_eq!(parsed.uid, Some(uid(&rid())));
        assert_eq!(parsed.start, Some(at("2026-11-23T08:00:00Z")));
    }

    #[test]
    fn parses_server_rewritten_events() {
        // LF line ends, a fold in the marker, a TZID start, a VALARM with its
        // own (ignored) properties, and a lower-case property name.
        let text = "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nEND:VTIMEZONE\nBEGIN:VEVENT\n\
                    dtstart;TZID=Europe/Berlin:20261123T090000\nBEGIN:VALARM\nUID:alarm\nEND:VALARM\n\
                    X-SLOTGUARD-BOOKING:rsv_demo_20261123T080000_\n 2579e728486449b88d897c1ecf3b632c\n\
                    UID:u1\nEND:VEVENT\nBEGIN:VEVENT\nUID:second\nEND:VEVENT\nEND:VCALENDAR\n";
        let parsed = parse_event(text).unwrap();
        assert_eq!(parsed.uid.as_deref(), Some("u1"));
        assert_eq!(parsed.booking.as_deref(), Some(rid().as_str()));
        assert_eq!(parsed.start, Some(at("2026-11-23T08:00:00Z")));
    }

    #[test]
    fn reads_every_dtstart_form() {
        let start = |l: &str| parse_dtstart(&ContentLine::parse(l).unwrap());
        assert_eq!(start("DTSTART:20260329T010000Z"), Some(at("2026-03-29T01:00:00Z")));
        assert_eq!(start("DTSTART;TZID=America/New_York:20260705T090000"), Some(at("2026-07-05T13:00:00Z")));
        assert_eq!(start("DTSTART;TZID=\"Europe/Berlin\":20261025T023000"), Some(at("2026-10-25T00:30:00Z")));
        assert_eq!(start("DTSTART:20261123T080000"), Some(at("2026-11-23T08:00:00Z")));
        assert_eq!(start("DTSTART;VALUE=DATE:20261123"), Some(at("2026-11-23T00:00:00Z")));
        assert_eq!(start("DTSTART;TZID=W. Europe Standard Time:20261123T080000"), None);
        assert_eq!(start("DTSTART:soon"), None);
    }

    #[test]
    fn content_lines_split_at_the_first_unquoted_colon() {
        let cl = ContentLine::parse("ATTENDEE;CN=\"a:b;c\";ROLE=CHAIR:mailto:x@y.z").unwrap();
        assert_eq!(cl.name, "ATTENDEE");
        assert_eq!(cl.param("CN"), Some("a:b;c"));
        assert_eq!(cl.param("ROLE"), Some("CHAIR"));
        assert_eq!(cl.value, "mailto:x@y.z");
        assert_eq!(ContentLine::parse("no colon here"), None);
    }

    #[test]
    fn no_event_means_none() {
        assert_eq!(parse_event("BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"), None);
    }
}
