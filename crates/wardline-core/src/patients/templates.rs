//! Message templates: the built-in texts, the rules for what may go in a
//! plain SMS, and rendering.
//!
//! A `no_phi` template may only have typed placeholders (`…date`, `…time`,
//! `…phone`) and the ones the server fills itself, so no free text a sender
//! types can reach an SMS. `phi` templates may have free text; they are only
//! ever delivered as secure messages behind a link.

use std::collections::BTreeMap;

use wardline_proto::patients::TemplateClass;

use crate::error::{ApiError, ApiResult};

/// Placeholders the server fills; a sender cannot supply them.
pub const SERVER_FILLED: &[&str] = &["link", "expires_hours", "practice_phone", "code"];

/// Templates the server sends on its own (plain SMS); they cannot be sent
/// through the texts endpoint and must stay `no_phi`.
pub const SYSTEM: &[&str] = &[
    NEW_SECURE_MESSAGE,
    VERIFICATION_CODE,
    KEYWORD_STOP,
    KEYWORD_START,
    KEYWORD_HELP,
];

pub const NEW_SECURE_MESSAGE: &str = "new_secure_message";
pub const VERIFICATION_CODE: &str = "verification_code";
pub const KEYWORD_STOP: &str = "keyword_stop";
pub const KEYWORD_START: &str = "keyword_start";
pub const KEYWORD_HELP: &str = "keyword_help";

/// `(key, language, class, body)`.
///
/// Texts that go as plain SMS are worded in the GSM-7 alphabet so that each
/// fits one part (see [`super::sms_size`]): Spanish keeps é and ñ, which GSM-7
/// has, and writes á, í, ó, ú without their accents ("codigo", "atencion"),
/// as carriers' own Spanish texts do; `phi` texts are read on the secure page
/// and keep them.
pub const BUILT_IN: &[(&str, &str, TemplateClass, &str)] = {
    use TemplateClass::*;
    &[
        (
            "appointment_reminder",
            "en",
            NoPhi,
            "Reminder: you have an appointment on {date} at {time}. To change it, call {practice_phone}. Reply STOP to opt out.",
        ),
        (
            "appointment_reminder",
            "es",
            NoPhi,
            "Recordatorio: tiene una cita el {date} a las {time}. Para cambiarla, llame al {practice_phone}. Responda STOP para no recibir mensajes.",
        ),
        (
            "pre_visit_instructions",
            "en",
            Phi,
            "Before your visit on {date}: {instructions}",
        ),
        (
            "pre_visit_instructions",
            "es",
            Phi,
            "Antes de su visita del {date}: {instructions}",
        ),
        (
            "lab_result_available",
            "en",
            Phi,
            "Your {test} results from {date} are ready. Your care team will contact you if anything needs attention. Questions: {practice_phone}.",
        ),
        (
            "lab_result_available",
            "es",
            Phi,
            "Sus resultados de {test} del {date} están listos. Su equipo de atención le contactará si algo requiere atención. Preguntas: {practice_phone}.",
        ),
        (
            NEW_SECURE_MESSAGE,
            "en",
            NoPhi,
            "Secure message from your care team: {link} Expires in {expires_hours}h. Reply STOP to opt out.",
        ),
        (
            NEW_SECURE_MESSAGE,
            "es",
            NoPhi,
            "Mensaje seguro de su equipo: {link} Caduca en {expires_hours}h. Responda STOP para cancelar.",
        ),
        (
            VERIFICATION_CODE,
            "en",
            NoPhi,
            "Your verification code is {code}. It expires in 10 minutes. Never share it.",
        ),
        (
            VERIFICATION_CODE,
            "es",
            NoPhi,
            "Su codigo de verificacion es {code}. Caduca en 10 minutos. No lo comparta.",
        ),
        (
            KEYWORD_STOP,
            "en",
            NoPhi,
            "You are unsubscribed and will receive no more messages. Reply START to resubscribe.",
        ),
        (
            KEYWORD_STOP,
            "es",
            NoPhi,
            "Se ha dado de baja y no recibira mas mensajes. Responda START para volver a suscribirse.",
        ),
        (
            KEYWORD_START,
            "en",
            NoPhi,
            "You are subscribed again. Reply STOP to opt out, HELP for help.",
        ),
        (
            KEYWORD_START,
            "es",
            NoPhi,
            "Se ha suscrito de nuevo. Responda STOP para darse de baja, HELP para ayuda.",
        ),
        (
            KEYWORD_HELP,
            "en",
            NoPhi,
            "Secure messages from your care team. For help call {practice_phone}. Reply STOP to opt out.",
        ),
        (
            KEYWORD_HELP,
            "es",
            NoPhi,
            "Mensajes seguros de su equipo de atencion. Para ayuda llame al {practice_phone}. Responda STOP para darse de baja.",
        ),
    ]
};

/// The placeholders of `body` in order of first appearance.
pub fn placeholders(body: &str) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(ApiError::validation("unmatched '}' in template"));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| ApiError::validation("unmatched '{' in template"))?;
        let name = &after[..close];
        if name.is_empty()
            || name.len() > 40
            || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            return Err(ApiError::validation(
                "placeholders are {lower_case_names} of up to 40 characters",
            ));
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    Ok(out)
}

/// What a sender-supplied placeholder may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Date,
    Time,
    Phone,
    FreeText,
}

fn kind_of(name: &str) -> Kind {
    if name.ends_with("date") {
        Kind::Date
    } else if name.ends_with("time") {
        Kind::Time
    } else if name.ends_with("phone") {
        Kind::Phone
    } else {
        Kind::FreeText
    }
}

/// Checks a template an administrator wants to approve.
pub fn validate(key: &str, language: &str, body: &str, class: TemplateClass) -> ApiResult<()> {
    if key.is_empty() || key.len() > 40 || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    {
        return Err(ApiError::validation(
            "template keys are lower_case names of up to 40 characters",
        ));
    }
    crate::patients::validate_language(language)?;
    let n = body.chars().count();
    if n == 0 || n > 600 {
        return Err(ApiError::validation(
            "template body must be 1-600 characters",
        ));
    }
    let names = placeholders(body)?;
    if SYSTEM.contains(&key) && class != TemplateClass::NoPhi {
        return Err(ApiError::validation(format!(
            "{key} is sent as a plain SMS, so it must be class no_phi"
        )));
    }
    for name in &names {
        let server = SERVER_FILLED.contains(&name.as_str());
        if SYSTEM.contains(&key) && !server {
            return Err(ApiError::validation(format!(
                "{key} may only use the server's placeholders ({})",
                SERVER_FILLED.join(", ")
            )));
        }
        if class == TemplateClass::NoPhi && !server && kind_of(name) == Kind::FreeText {
            return Err(ApiError::validation(format!(
                "{{{name}}} would put free text in a plain SMS: a no_phi template may only have \
                 placeholders ending in date, time or phone (or the server's own); make it class phi"
            )));
        }
    }
    Ok(())
}

/// Checks the sender's values against the template's placeholders: every
/// one supplied, nothing extra, typed values well-formed, free text bounded.
pub fn check_params(body: &str, params: &BTreeMap<String, String>) -> ApiResult<()> {
    let names = placeholders(body)?;
    for key in params.keys() {
        if SERVER_FILLED.contains(&key.as_str()) {
            return Err(ApiError::validation(format!(
                "{{{key}}} is filled by the server"
            )));
        }
        if !names.contains(key) {
            return Err(ApiError::validation(format!(
                "the template has no {{{key}}} placeholder"
            )));
        }
    }
    for name in names
        .iter()
        .filter(|n| !SERVER_FILLED.contains(&n.as_str()))
    {
        let value = params
            .get(name)
            .ok_or_else(|| ApiError::validation(format!("missing a value for {{{name}}}")))?;
        let ok = match kind_of(name) {
            Kind::Date => value.parse::<jiff::civil::Date>().is_ok() && value.len() == 10,
            Kind::Time => value.len() == 5 && value.parse::<jiff::civil::Time>().is_ok(),
            Kind::Phone => {
                (4..=20).contains(&value.len())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            }
            Kind::FreeText => {
                let n = value.chars().count();
                (1..=2000).contains(&n) && !value.chars().any(|c| c.is_control() && c != '\n')
            }
        };
        if !ok {
            let want = match kind_of(name) {
                Kind::Date => "a date as YYYY-MM-DD",
                Kind::Time => "a time as HH:MM",
                Kind::Phone => "a phone number",
                Kind::FreeText => "1-2000 characters of text",
            };
            return Err(ApiError::validation(format!("{{{name}}} must be {want}")));
        }
    }
    Ok(())
}

/// What a template's SMS costs, with its placeholders filled with the
/// longest values they usually take (a date, `HH:MM`, a 15-character phone,
/// the practice's line, a link to this server, a 6-digit code); None for a
/// `phi` template, which goes behind a link (the notice is what is texted).
pub fn sms_size(
    body: &str,
    class: TemplateClass,
    practice_phone: &str,
    public_url: &str,
) -> Option<wardline_proto::patients::SmsSize> {
    if class == TemplateClass::Phi {
        return None;
    }
    let names = placeholders(body).ok()?;
    let values: BTreeMap<String, String> = names
        .into_iter()
        .map(|name| {
            let value = match name.as_str() {
                "link" => format!("{public_url}/p/{}", "x".repeat(43)),
                "expires_hours" => "24".to_owned(),
                "code" => "493027".to_owned(),
                "practice_phone" if !practice_phone.is_empty() => practice_phone.to_owned(),
                n => match kind_of(n) {
                    Kind::Date => "2026-12-31".to_owned(),
                    Kind::Time => "23:59".to_owned(),
                    _ => "+1 555 010 2000".to_owned(),
                },
            };
            (name, value)
        })
        .collect();
    Some(super::sms_size::size(&render(body, &values)))
}

/// Fills the placeholders (all present: checked before).
pub fn render(body: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(body.len() + 64);
    let mut rest = body;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                out.push_str(values.get(name).map(String::as_str).unwrap_or(""));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn built_in_templates_obey_their_own_rules() {
        for (key, lang, class, body) in BUILT_IN {
            validate(key, lang, body, *class).unwrap_or_else(|e| panic!("{key}/{lang}: {e:?}"));
        }
    }

    /// Issue 19, case 11: every built-in text that goes as a plain SMS is
    /// GSM-7 and one part, in every language, with a link to a server whose
    /// address is as long as `https://wardline.hospital.example.org`.
    #[test]
    fn built_in_sms_texts_fit_one_gsm7_part() {
        for (key, lang, class, body) in BUILT_IN {
            let Some(s) = sms_size(
                body,
                *class,
                "+1 555 010 2000",
                "https://wardline.hospital.example.org",
            ) else {
                continue;
            };
            assert_eq!(
                (s.encoding, s.segments),
                (wardline_proto::patients::SmsEncoding::Gsm7, 1),
                "{key}/{lang}: {s:?}"
            );
        }
    }

    #[test]
    fn free_text_cannot_go_in_a_plain_sms() {
        let err = validate(
            "custom",
            "en",
            "Hi, about your {condition}",
            TemplateClass::NoPhi,
        )
        .unwrap_err();
        assert!(err.message.contains("free text"), "{}", err.message);
        validate(
            "custom",
            "en",
            "Hi, about your {condition}",
            TemplateClass::Phi,
        )
        .unwrap();
        assert!(validate(NEW_SECURE_MESSAGE, "en", "{link}", TemplateClass::Phi).is_err());
        assert!(validate(KEYWORD_HELP, "en", "call {date}", TemplateClass::NoPhi).is_err());
        assert!(validate("x", "en", "broken {link", TemplateClass::NoPhi).is_err());
        assert!(validate("x", "en", "broken link}", TemplateClass::NoPhi).is_err());
    }

    #[test]
    fn typed_values_are_checked() {
        let body = "On {date} at {time}, call {practice_phone}";
        check_params(body, &params(&[("date", "2026-12-01"), ("time", "09:30")])).unwrap();
        for bad in [
            params(&[("date", "tomorrow"), ("time", "09:30")]),
            params(&[("date", "2026-12-01"), ("time", "9:30am")]),
            params(&[("date", "2026-12-01")]),
            params(&[("date", "2026-12-01"), ("time", "09:30"), ("note", "extra")]),
            params(&[
                ("date", "2026-12-01"),
                ("time", "09:30"),
                ("practice_phone", "1"),
            ]),
        ] {
            assert!(check_params(body, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn render_fills_every_placeholder() {
        let out = render(
            "On {date} at {time}; {date}.",
            &params(&[("date", "2026-12-01"), ("time", "09:30")]),
        );
        assert_eq!(out, "On 2026-12-01 at 09:30; 2026-12-01.");
    }
}
