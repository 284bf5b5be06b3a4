//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of clock
//! skew), as every authenticator app implements it.

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::error::{ApiError, ApiResult};

/// 160-bit secret, the size RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut s = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

pub fn totp(secret: &[u8], issuer: &str, account: &str) -> ApiResult<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some(issuer.replace(':', "")))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(ApiError::internal)
}

pub fn to_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// A code as people type it: authenticator apps show `123 456`, copy it with
/// the space (or a non-breaking one), and people add dashes; all of those
/// are dropped (real-world case 12 of issue 19). Used wherever a code is
/// typed: TOTP at sign-in and enrolment, recovery codes, patients' texted
/// codes.
pub fn typed_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '‐' | '‑' | '‒' | '–' | '—' | '−'))
        .collect()
}

/// The accepted time step, or `None`. The caller must refuse a step that was
/// already used (RFC 6238 §5.2).
pub fn check(totp: &Totp, code: &str, now: i64) -> Option<i64> {
    let code = typed_code(code);
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(&code, now.max(0) as u64).map(|step| step as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, case 12: codes as authenticator apps show and copy them.
    #[test]
    fn codes_are_read_as_people_type_them() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/12-totp-spaced-code.txt"
        ));
        assert!(fixture.contains("\"624 632\""), "the case's input");
        let t = totp(b"12345678901234567890", "Wardline", "user").unwrap();
        let now = 1_796_000_000;
        let code = t.generate(now as u64).to_string();
        let (a, b) = code.split_at(3);
        for typed in [
            code.clone(),
            format!("{a} {b}"),
            format!(" {a} {b}\t"),
            format!("{a}-{b}"),
            format!("{a}\u{a0}{b}"),
            format!("{a}\u{2009}{b}"),
            format!("{a}–{b}"),
        ] {
            assert!(check(&t, &typed, now).is_some(), "{typed:?}");
        }
        // ±1 step of drift, not three.
        let at = |secs: u64| t.generate(secs).to_string();
        assert!(check(&t, &at(now as u64 - 30), now).is_some());
        assert!(check(&t, &at(now as u64 + 30), now).is_some());
        assert!(check(&t, &at(now as u64 - 90), now).is_none());
        assert!(check(&t, &format!("{a} {b}7"), now).is_none());
    }

    /// RFC 6238 Appendix B: all 18 published vectors (8 digits; the SHA-256 and
    /// SHA-512 seeds are the ASCII seed repeated to 32 and 64 bytes).
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let vectors: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (alg, seed, col) in [
            (Algorithm::SHA1, &sha1, 1),
            (Algorithm::SHA256, &sha256, 2),
            (Algorithm::SHA512, &sha512, 3),
        ] {
            let t = Builder::new()
                .with_algorithm(alg)
                .with_digits(8)
                .with_skew(0)
                .with_step_duration(30)
                .with_secret(Secret::from(seed.clone()))
                .build()
                .unwrap();
            for v in vectors {
                let expected = [v.1, v.2, v.3][col - 1];
                assert_eq!(
                    t.generate(v.0).to_string(),
                    expected,
                    "{alg:?} at T={}",
                    v.0
                );
            }
        }
    }

    #[test]
    fn check_accepts_adjacent_step_and_rejects_garbage() {
        let secret = new_secret();
        let t = totp(&secret, "Wardline (Test)", "a@b.test").unwrap();
        let now = 1_700_000_000;
        let code = t.generate(now as u64).to_string();
        assert_eq!(check(&t, &code, now), Some(now / 30));
        assert_eq!(check(&t, &code, now + 30), Some(now / 30));
        assert_eq!(check(&t, &code, now + 120), None);
        assert_eq!(check(&t, "12345", now), None);
        assert_eq!(check(&t, "abcdef", now), None);
        let uri = t.to_url().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={}", to_base32(&secret))));
    }
}
