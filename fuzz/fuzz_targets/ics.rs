//! The iCalendar reader on arbitrary text: `parse_event`, and the line-level
//! readers it is built from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotguard::adapters::caldav::ics::{ContentLine, parse_dtstart, parse_event, unescape_text, unfold};

fuzz_target!(|text: &str| {
    let _ = parse_event(text);
    for line in unfold(text) {
        if let Some(cl) = ContentLine::parse(&line) {
            let _ = parse_dtstart(&cl);
            let _ = unescape_text(&cl.value);
        }
    }
});
