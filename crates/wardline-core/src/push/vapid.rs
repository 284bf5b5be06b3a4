//! VAPID (RFC 8292): the server's P-256 key that push services check every
//! push against, so that a leaked subscription cannot be used by anyone
//! else. Browsers subscribe with its public key; each push carries
//! `Authorization: vapid t=<JWT>, k=<public key>`, the JWT (RFC 7519, ES256)
//! naming the push service's origin (`aud`), an expiry (`exp`, at most 24 h)
//! and the operator's contact (`sub`).
//!
//! The private key never exists at rest: it is derived from a server key in
//! the vault (`push-vapid-v1`, wrapped by the KEK like every data key, so it
//! follows KEK rotation and is the same on every node).
//!
//! A three-claim ES256 token is signed here with `p256` (already built for
//! MLS) rather than through a JWT crate: `jwt-simple`, which `web-push-native`
//! would use, brings ~20 crates (RSA, Ed25519, its own BoringSSL port) for it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::vault::{Vault, VaultError};

/// The vault's server key the VAPID key is derived from.
const SEED_KEY_ID: &str = "push-vapid-v1";

pub struct VapidKey {
    signing: SigningKey,
    /// Uncompressed SEC1 point, base64url without padding.
    public: String,
}

impl VapidKey {
    /// The server's VAPID key (created with its vault key on first use).
    pub async fn load(vault: &Vault) -> Result<VapidKey, VaultError> {
        let seed = vault.service_key(SEED_KEY_ID).await?;
        Ok(VapidKey::from_seed(seed.expose()))
    }

    /// A P-256 private key from 32 secret bytes: HMAC-SHA256 of a label and
    /// a counter under the seed, the first output that is a valid scalar
    /// (all but ~2⁻³² of them are).
    fn from_seed(seed: &[u8; 32]) -> VapidKey {
        for counter in 0u8..=u8::MAX {
            let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("any key length");
            mac.update(b"wardline vapid p-256 v1");
            mac.update(&[counter]);
            let candidate = Zeroizing::new(mac.finalize().into_bytes());
            if let Ok(signing) = SigningKey::from_slice(candidate.as_slice()) {
                let point = signing.verifying_key().as_affine().to_encoded_point(false);
                return VapidKey {
                    public: URL_SAFE_NO_PAD.encode(point.as_bytes()),
                    signing,
                };
            }
        }
        unreachable!("256 HMAC outputs all outside the P-256 scalar range")
    }

    /// The public key, base64url: the browser's `applicationServerKey` and
    /// the `k` of every push.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `audience` (the push
    /// service's origin, `https://host[:port]`) valid until `expires` (Unix
    /// seconds).
    pub fn authorization(&self, audience: &str, contact: &str, expires: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": expires, "sub": contact });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        // ES256 (RFC 7518 §3.4): the 64-byte r ‖ s, not DER.
        let sig: Signature = self.signing.sign(signed.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(sig.to_bytes());
        format!("vapid t={signed}.{sig}, k={}", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn the_key_is_fixed_by_its_seed_and_the_token_verifies() {
        let a = VapidKey::from_seed(&[7; 32]);
        assert_eq!(a.public_key(), VapidKey::from_seed(&[7; 32]).public_key());
        assert_ne!(a.public_key(), VapidKey::from_seed(&[8; 32]).public_key());
        let raw = URL_SAFE_NO_PAD.decode(a.public_key()).unwrap();
        assert_eq!((raw.len(), raw[0]), (65, 4), "uncompressed point");

        let h = a.authorization(
            "https://push.example.net",
            "mailto:ops@example.org",
            1_700_000_000,
        );
        let (t, k) = h
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, a.public_key());
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let (_, claims) = signed.split_once('.').unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["exp"], 1_700_000_000);
        assert_eq!(claims["sub"], "mailto:ops@example.org");
        let key = VerifyingKey::from_sec1_bytes(&raw).unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        key.verify(signed.as_bytes(), &sig).unwrap();
    }
}
