//! Blind indexes: HMAC-SHA256 of a normalised value under a secret index key.
//! The server can find "the user with this e-mail" by equality on the index
//! without storing the e-mail in clear; without the key the index reveals nothing
//! beyond equality.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DataKey;

/// `HMAC-SHA256(key, domain || 0x00 || value)` as lowercase hex. `domain`
/// separates indexes (e.g. `user-email/<org id>`) so equal values in different
/// tenants or fields do not collide.
pub fn blind_index(key: &DataKey, domain: &str, value: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC accepts any key length");
    mac.update(domain.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_key_and_domain() {
        let k = DataKey::generate();
        let a = blind_index(&k, "user-email/org1", "a@b.test");
        assert_eq!(a, blind_index(&k, "user-email/org1", "a@b.test"));
        assert_ne!(a, blind_index(&k, "user-email/org2", "a@b.test"));
        assert_ne!(
            a,
            blind_index(&DataKey::generate(), "user-email/org1", "a@b.test")
        );
        assert_eq!(a.len(), 64);
    }
}
