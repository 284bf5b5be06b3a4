//! Phone numbers as E.164 (ITU-T E.164: `+`, country code, national
//! significant number, at most 15 digits), read with libphonenumber's
//! metadata (the `phonenumber` crate).
//!
//! Numbers reach a practice as people write them: `+1 (555) 010-0123`,
//! `+44 (0)20 7946 0958` (E.123's bracketed trunk prefix, dialled only inside
//! the country), hyphens pasted from a word processor (U+2010–U+2015,
//! U+2212), non-breaking spaces, full-width digits, `0044 …`, a national
//! number under the practice's default region. Every one is stored as the
//! E.164 the carrier uses, so that a text reaches the patient and the
//! patient's reply (whose `From` the carrier writes in E.164) matches them.
//!
//! "Possible", not "valid": a number is refused when its country has no
//! number of that length (libphonenumber's possible lengths), never because
//! its range is not in the metadata yet — a newly assigned range or the
//! fictional 555-01xx numbers used in training stay usable.

use phonenumber::{Mode, country};

use crate::error::{ApiError, ApiResult};

/// The characters people put in phone numbers, as ASCII; anything else is
/// kept for the parser to judge.
fn ascii(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' => '-',
            '\u{00A0}' | '\u{2007}' | '\u{202F}' | '\u{2009}' | '\u{3000}' => ' ',
            '\u{FF0B}' => '+',
            '\u{FF08}' => '(',
            '\u{FF09}' => ')',
            '\u{FF10}'..='\u{FF19}' => char::from(b'0' + (c as u32 - 0xFF10) as u8),
            c => c,
        })
        .collect()
}

/// Reads `raw` as a phone number that can receive texts and returns its
/// E.164 form (`+442079460958`).
///
/// `default_region` (ISO 3166-1 alpha-2, such as `US`) places a number
/// written without its country code; without one such a number is refused.
///
/// Errors: 422 `validation` naming what is wrong (no country code, an
/// extension, too short, too long, not a number).
pub fn e164(raw: &str, default_region: Option<&str>) -> ApiResult<String> {
    let mut text = ascii(raw);
    // E.123 misuse: the trunk prefix in brackets after the country code
    // ("+44 (0)20 …") is not dialled from abroad and not part of E.164.
    if text.starts_with('+') || text.starts_with("00") {
        text = text.replacen("(0)", "", 1);
    }
    if let Some(rest) = text.get(..4).filter(|p| p.eq_ignore_ascii_case("tel:")) {
        text = text[rest.len()..].to_owned();
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("ext") || lower.contains('x') || lower.contains('#') {
        return Err(ApiError::validation(
            "phone has an extension; a text needs a number that reaches a mobile phone directly",
        ));
    }
    // libphonenumber would read letters as a keypad's digits (1-800-FLOWERS):
    // a mobile number typed with a letter is a typing mistake.
    if text.chars().any(char::is_alphabetic) {
        return Err(ApiError::validation("phone has letters in it"));
    }
    if text.len() > 64 || !text.chars().any(|c| c.is_ascii_digit()) {
        return Err(ApiError::validation(
            "phone must be a phone number such as +15550100123",
        ));
    }
    let region = match default_region {
        Some(r) => Some(r.parse::<country::Id>().map_err(|_| {
            ApiError::validation("the default region must be a country code such as US")
        })?),
        None => None,
    };
    let international = text.starts_with('+');
    if !international && region.is_none() {
        return Err(ApiError::validation(
            "phone must start with + and its country code (such as +1 or +44), or the \
             practice must set its default region",
        ));
    }
    let number = phonenumber::parse(region, &text).map_err(|e| {
        ApiError::validation(match e {
            phonenumber::ParseError::InvalidCountryCode => {
                "phone has no country code that exists".to_owned()
            }
            phonenumber::ParseError::TooShortNsn | phonenumber::ParseError::TooShortAfterIdd => {
                "phone is too short for a phone number".to_owned()
            }
            phonenumber::ParseError::TooLong => "phone is too long for a phone number".to_owned(),
            _ => "phone must be a phone number such as +15550100123".to_owned(),
        })
    })?;
    if number.extension().is_some() {
        return Err(ApiError::validation(
            "phone has an extension; a text needs a number that reaches a mobile phone directly",
        ));
    }
    let e164 = number.format().mode(Mode::E164).to_string();
    // E.164 allows at most 15 digits; fewer than 8 is a short code or an
    // extension, not a number a text can reach (found by fuzzing: `+00432080`).
    let digits = e164.len() - 1;
    if !(8..=15).contains(&digits) {
        return Err(ApiError::validation(format!(
            "phone is too {} for a mobile number",
            if digits < 8 { "short" } else { "long" }
        )));
    }
    let code = number.code().value();
    let national = e164.len() - 1 - code.to_string().len();
    let lengths: Vec<u16> = phonenumber::metadata::DATABASE
        .by_code(&code)
        .unwrap_or_default()
        .iter()
        .flat_map(|m| {
            // The metadata keeps lengths per number type (the general
            // descriptor's list is empty): those a text can reach, not
            // pagers or short "universal access" numbers.
            let d = m.descriptors();
            [d.fixed_line(), d.mobile(), d.voip(), d.personal_number()]
                .into_iter()
                .flatten()
                .flat_map(|x| x.possible_length().to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    let possible = lengths.contains(&(national as u16));
    if !possible {
        let (min, max) = (
            lengths.iter().min().copied().unwrap_or(0),
            lengths.iter().max().copied().unwrap_or(0),
        );
        let what = if (national as u16) < min {
            "too short"
        } else if (national as u16) > max {
            "too long"
        } else {
            "not a length numbers have"
        };
        return Err(ApiError::validation(format!(
            "phone is {what} for country code +{code}: its numbers have {} digits after it",
            lengths_text(&lengths)
        )));
    }
    Ok(e164)
}

/// `10`, `9 or 10`, `7, 9 or 10`.
fn lengths_text(lengths: &[u16]) -> String {
    let mut l = lengths.to_vec();
    l.sort_unstable();
    l.dedup();
    let words: Vec<String> = l.iter().map(u16::to_string).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => "no".into(),
    }
}

/// An ISO 3166-1 alpha-2 region libphonenumber knows (`US`, `GB`).
pub fn validate_region(region: &str) -> ApiResult<()> {
    region
        .parse::<country::Id>()
        .map(|_| ())
        .map_err(|_| ApiError::validation("default_region must be a country code such as US or GB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, case 08: every number of `realworld/08-phones.tsv`.
    #[test]
    fn numbers_as_staff_type_or_paste_them() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/08-phones.tsv"
        ));
        let mut rows = 0;
        for line in fixture
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let mut cols = line.split('\t');
            let (input, want) = (cols.next().unwrap(), cols.next().unwrap());
            let got = e164(input, None).ok();
            let right = match want {
                "REFUSE" | "REFUSE or +15550100123" => got.is_none(),
                "+442079460958 or REFUSE" => {
                    got.is_none() || got.as_deref() == Some("+442079460958")
                }
                e => got.as_deref() == Some(e),
            };
            assert!(right, "{input:?}: got {got:?}, want {want}");
            rows += 1;
        }
        assert_eq!(rows, 11);
        // With the practice's region, a national number is completed.
        assert_eq!(e164("(555) 010-0123", Some("US")).unwrap(), "+15550100123");
        assert_eq!(e164("020 7946 0958", Some("GB")).unwrap(), "+442079460958");
        assert_eq!(
            e164("0044 20 7946 0958", Some("GB")).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            e164("011 44 20 7946 0958", Some("US")).unwrap(),
            "+442079460958"
        );
    }

    #[test]
    fn more_of_the_same_kind() {
        for (input, want) in [
            // Full-width digits and plus (East Asian input methods), thin spaces.
            ("＋１ ５５５ ０１０ ０１２３", "+15550100123"),
            ("+1\u{202F}555\u{00A0}010\u{2009}0123", "+15550100123"),
            ("+33 (0)6 12 34 56 78", "+33612345678"),
            ("+39 06 1234 5678", "+390612345678"), // Italy keeps its leading 0
            ("+61 (0)4 1234 5678", "+61412345678"),
            ("tel:+1-555-010-0123", "+15550100123"),
            // The trunk 0 kept without brackets: libphonenumber strips the
            // national prefix, so the number meant is the one stored.
            ("+4402079460958", "+442079460958"),
            ("+49030901820", "+4930901820"),
        ] {
            assert_eq!(
                e164(input, None).map_err(|e| e.message).as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
        for bad in [
            "+1 555 010 0123 x4",
            "+999 1234 5678", // no such country code
            "+1555abc0123",
            "",
            "+",
            "555-0100", // no country and no region
            "+1 (555) 010-0123;ext=4",
            "+00432080", // a 6-digit number: possible in Austria, not textable
        ] {
            assert!(
                e164(bad, None).is_err(),
                "{bad:?} accepted as {:?}",
                e164(bad, None)
            );
        }
        let e = e164("+15550100", None).unwrap_err().message;
        assert!(e.contains("too short") && e.contains("+1"), "{e}");
        assert!(validate_region("US").is_ok() && validate_region("XX").is_err());
    }
}
