//! Bearer tokens: 256 random bits, shown to the client once; the server stores
//! only SHA-256 of the token. A slow hash is not needed because the token has
//! full entropy (unlike a password).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// A new random token with a short type prefix (`wls_` session, `wlm_` MFA
/// challenge...) so that a leaked token in a ticket or a paste is recognisable.
pub fn new_token(prefix: &str) -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// What the server stores and looks tokens up by.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Random human-typable code (recovery codes, setup codes): groups of lowercase
/// base32 without ambiguous characters.
pub fn new_code(groups: usize, group_len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut out = String::with_capacity(groups * (group_len + 1));
    for g in 0..groups {
        if g > 0 {
            out.push('-');
        }
        for _ in 0..group_len {
            // Rejection sampling keeps the distribution uniform.
            loop {
                let b = (OsRng.next_u32() & 0xff) as u8;
                if (b as usize) < 256 - (256 % ALPHABET.len()) {
                    out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_stably() {
        let a = new_token("wls_");
        let b = new_token("wls_");
        assert!(a.starts_with("wls_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn codes_have_the_requested_shape() {
        let c = new_code(3, 4);
        assert_eq!(c.len(), 14);
        assert_eq!(c.split('-').count(), 3);
        assert!(c.chars().all(|ch| ch == '-' || ch.is_ascii_alphanumeric()));
    }
}
