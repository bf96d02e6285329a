//! `WebhookVerifier::verify` on arbitrary bytes, correctly signed (so the
//! fuzzer gets past the signature check into event parsing), and on the same
//! bytes with a header made of the input itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotguard::adapters::stripe::{WebhookVerifier, sign};
use slotguard::ports::WebhookVerify;

const SECRET: &str = "whsec_fuzz";

fuzz_target!(|data: &[u8]| {
    let verifier = WebhookVerifier::new(SECRET);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let header = sign(&String::from_utf8_lossy(data), SECRET, now);
    let _ = verifier.verify(data, Some(&header));
    // The input as the header too: the header parser sees arbitrary text.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verifier.verify(data, Some(text));
    }
});
