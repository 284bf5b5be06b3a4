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
            "You have a new secure message. Open {link} to read it (the link expires in {expires_hours} hours). Reply STOP to opt out.",
        ),
        (
            NEW_SECURE_MESSAGE,
            "es",
            NoPhi,
            "Tiene un nuevo mensaje seguro. Abra {link} para leerlo (el enlace caduca en {expires_hours} horas). Responda STOP para no recibir mensajes.",
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
            "Su código de verificación es {code}. Caduca en 10 minutos. No lo comparta.",
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
            "Se ha dado de baja y no recibirá más mensajes. Responda START para volver a suscribirse.",
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
            "Mensajes seguros de su equipo de atención. Para ayuda llame al {practice_phone}. Responda STOP para darse de baja.",
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
