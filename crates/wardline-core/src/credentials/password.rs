//! Password hashing (Argon2id) and the password policy (NIST SP 800-63B).
//!
//! Argon2id parameters are OWASP's recommended minimum (19 MiB, 2 passes,
//! 1 lane). Hashing runs on the blocking pool and at most `2 × cores` hashes run
//! at once, so a burst of logins cannot exhaust memory or starve the async
//! workers.

use std::sync::Arc;

use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 128;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so that the response
    /// time does not reveal which e-mail addresses have accounts.
    dummy_hash: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Passwords {
    pub fn new() -> Passwords {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let dummy = argon2()
            .hash_password(b"not-a-real-password", &SaltString::generate(&mut OsRng))
            .expect("hashing a constant cannot fail")
            .to_string();
        Passwords {
            permits: Arc::new(Semaphore::new(cores * 2)),
            dummy_hash: Arc::new(dummy),
        }
    }

    pub async fn hash(&self, password: &str) -> ApiResult<String> {
        let pw = Zeroizing::new(password.to_owned());
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            argon2()
                .hash_password(pw.as_bytes(), &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is
    /// no account or the stored value is not a hash (an erased credential),
    /// taking the same time either way.
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> ApiResult<bool> {
        let real = hash
            .filter(|h| PasswordHash::new(h).is_ok())
            .map(str::to_owned);
        let exists = real.is_some();
        let hash = real.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let pw = Zeroizing::new(password.to_owned());
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        let ok = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).expect("checked above or the dummy hash");
            argon2().verify_password(pw.as_bytes(), &parsed).is_ok()
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(ok && exists)
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

/// NIST SP 800-63B: a minimum length, no composition rules, and a check against
/// passwords known to be common or breached. The bundled lists come with zxcvbn
/// (its password frequency lists from public breach corpora, plus dictionaries);
/// `context` adds words the password must not be built from (name, e-mail,
/// organisation).
pub fn check_policy(password: &str, context: &[&str]) -> ApiResult<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(ApiError::validation(format!(
            "password must be at least {MIN_LEN} characters"
        )));
    }
    if len > MAX_LEN {
        return Err(ApiError::validation(format!(
            "password must be at most {MAX_LEN} characters"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "password must not contain control characters",
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, context);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "it is too easy to guess".into());
        return Err(ApiError::validation(format!(
            "password is too common or guessable ({hint}); a few unrelated words make a good one"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rejects_short_common_and_personal_passwords() {
        assert!(check_policy("short", &[]).is_err());
        assert!(check_policy("password1234", &[]).is_err());
        assert!(check_policy("qwertyuiop123", &[]).is_err());
        assert!(
            check_policy(
                "nora.nurse@riverside.test",
                &["nora.nurse@riverside.test", "Nora Nurse"]
            )
            .is_err()
        );
        assert!(check_policy(&"x".repeat(MAX_LEN + 1), &[]).is_err());
    }

    #[test]
    fn policy_accepts_passphrases_without_composition_rules() {
        check_policy("lantern orbit mossy teacup", &[]).unwrap();
        check_policy("correct-zebra-violin-harbor", &[]).unwrap();
    }

    #[tokio::test]
    async fn hash_verifies_and_uses_owasp_parameters() {
        let p = Passwords::new();
        let h = p.hash("lantern orbit mossy teacup").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            p.verify(Some(&h), "lantern orbit mossy teacup")
                .await
                .unwrap()
        );
        assert!(
            !p.verify(Some(&h), "lantern orbit mossy teacuP")
                .await
                .unwrap()
        );
        assert!(!p.verify(None, "anything").await.unwrap());
        assert!(!p.verify(Some("!deprovisioned"), "anything").await.unwrap());
    }
}
