//! Credentials as such: password hashing and the password policy, and TOTP
//! codes. Below the directory (which sets passwords) and the sign-in service
//! (which checks them), and below patient texting (whose one-time codes are
//! typed as TOTP codes are).

pub mod password;
pub mod totp;
