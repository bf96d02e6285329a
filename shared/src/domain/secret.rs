//! Reservation secrets: the customer's credential for one reservation.
//!
//! `POST /v1/reservations` answers a fresh secret once, in its `201` (like
//! Stripe's `client_secret`); the table keeps only its SHA-256. Whoever holds
//! the secret may see the reservation's details, pay for it, cancel and
//! reschedule it; whoever holds only the reservation id (it is in the success
//! URL, calendar events and Stripe metadata) sees its status and times.
//!
//! The secret carries 244 random bits (two UUIDv4s), so a plain SHA-256 is
//! enough to store it: there is nothing to brute-force a hash of.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A reservation's secret, in clear: only ever in the `201` that made it and
/// in the customer's hands. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ReservationSecret(String);

impl ReservationSecret {
    /// What every secret starts with (so scanners and people recognise one).
    pub const PREFIX: &'static str = "rsk_";

    /// A fresh secret: `rsk_` and 43 base64url characters of 32 bytes, 244 of
    /// them random bits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(format!("{}{}", Self::PREFIX, BASE64URL_NOPAD.encode(&bytes)))
    }

    /// The secret's text, to hand to the customer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the table stores instead.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

impl fmt::Debug for ReservationSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReservationSecret(..)")
    }
}

/// The SHA-256 of a reservation secret, as stored: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(data_encoding::HEXLOWER.encode(&Sha256::digest(secret.as_bytes())))
    }

    /// A stored hash; `None` unless it is 64 lowercase hex digits.
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Self(hex.to_owned()))
    }

    /// The hex digits, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the secret this is the hash of, in time independent
    /// of where a wrong guess differs.
    pub fn admits(&self, given: &str) -> bool {
        let given = Sha256::digest(given.as_bytes());
        let Ok(stored) = data_encoding::HEXLOWER.decode(self.0.as_bytes()) else { return false };
        given.as_slice().ct_eq(&stored).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_admits_itself_and_nothing_else() {
        let secret = ReservationSecret::generate();
        let hash = secret.hash();
        assert!(hash.admits(secret.expose()));
        let text = secret.expose();
        for wrong in ["", &text[..text.len() - 1], &format!("{text}x"), &text.to_uppercase(), "rsk_"] {
            assert!(!hash.admits(wrong), "{wrong:?} admitted");
        }
        assert!(!hash.admits(ReservationSecret::generate().expose()), "another reservation's secret");
        assert_eq!(SecretHash::parse(hash.as_str()), Some(hash.clone()));
    }

    #[test]
    fn secrets_are_fresh_well_formed_and_never_printed() {
        let a = ReservationSecret::generate();
        let b = ReservationSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(ReservationSecret::PREFIX));
        assert_eq!(a.expose().len(), 4 + 43);
        assert!(a.expose()[4..].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
        assert_ne!(a.hash().as_str(), a.expose());
    }

    #[test]
    fn stored_hashes_are_checked() {
        assert!(SecretHash::parse(&"a".repeat(64)).is_some());
        for bad in ["", "ab", &"A".repeat(64), &"g".repeat(64), &"a".repeat(65)] {
            assert!(SecretHash::parse(bad).is_none(), "{bad:?}");
        }
    }
}
