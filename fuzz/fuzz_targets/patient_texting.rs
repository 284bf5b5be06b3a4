//! Patient texting's own parsers: template placeholders and the rules for
//! what may go in a plain SMS, rendering, phone numbers (E.164), dates, quiet hours,
//! webhook signatures, the link fragment, and opening a client-sealed
//! message with a fragment from a URL. (The patient pages' HTML escaping is
//! the server's, held by its unit test `text_is_escaped`: fuzzing it cost
//! the whole server — axum, sqlx, SQLite's C — in every fuzz build, for a
//! five-case character map.)
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use wardline_proto::patients::{QuietHours, TemplateClass};
use wardline_core::patients::{self, delivery, gateway, templates};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parts: Vec<&str> = text.splitn(4, '\u{1}').collect();
    let a = parts.first().copied().unwrap_or("");
    let b = parts.get(1).copied().unwrap_or("");
    let c = parts.get(2).copied().unwrap_or("");

    // Templates: whatever validates for a plain SMS renders with no free text.
    if let Ok(names) = templates::placeholders(a) {
        let params: BTreeMap<String, String> = names
            .iter()
            .filter(|n| !templates::SERVER_FILLED.contains(&n.as_str()))
            .map(|n| (n.clone(), b.to_owned()))
            .collect();
        if templates::validate("fuzz", "en", a, TemplateClass::NoPhi).is_ok()
            && templates::check_params(a, &params).is_ok()
        {
            let out = templates::render(a, &params);
            assert!(!out.contains('{') || a.matches('{').count() > names.len());
        }
        let _ = templates::render(a, &params);
    }
    let _ = templates::validate(a, b, c, TemplateClass::Phi);

    // Phone numbers: whatever is accepted is E.164 (`+`, 8–15 digits).
    for region in [None, Some("US"), Some("GB")] {
        if let Ok(e164) = wardline_core::phone::e164(a, region) {
            let digits = e164.strip_prefix('+').expect("E.164 starts with +");
            assert!((8..=15).contains(&digits.len()), "{e164}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{e164}");
        }
    }
    let _ = patients::validate_dob(a);
    let _ = patients::validate_language(a);
    let _ = wardline_core::policy::patients::quiet_hours_end(
        &QuietHours {
            start: a.chars().take(8).collect(),
            end: b.chars().take(8).collect(),
            time_zone: c.chars().take(40).collect(),
        },
        i64::from(data.first().copied().unwrap_or(0)) * 86_400 * 400,
    );

    let fields = vec![(a.to_owned(), b.to_owned())];
    let _ = gateway::verify_webhook("token", c, &fields, b);

    let with = delivery::with_fragment(a, b, c);
    assert!(with.len() == a.len() || with.len() == a.len() + c.len() + 1);

    let _ = wardline_client::core::patient::open_for_patient(data, a);
});
