//! A CalDAV REPORT answer read as the adapter reads it: the WebDAV
//! multistatus, then each response's calendar data and href.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    let _ = slotguard::fuzzing::caldav_report(body);
});
