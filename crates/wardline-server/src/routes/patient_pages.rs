//! The patient's pages: server-rendered HTML, mobile first.
//!
//! One small script (allowed by hash) opens messages sealed by their
//! writer's client; everything else works without script.
//!
//! Accessibility: a `lang` on the page, one `h1`, every field with a visible
//! label, errors announced (`role="alert"`) and tied to their field
//! (`aria-describedby`), text at 18 px with contrast above 7:1, focus always
//! visible, everything reachable by keyboard. English and Spanish; other
//! languages fall back to English.

use wardline_proto::patients::{PatientMessage, PatientMessageDirection};

/// The texts of the pages in one language.
pub struct Strings {
    pub lang: &'static str,
    pub title: &'static str,
    pub intro: &'static str,
    pub dob_label: &'static str,
    pub dob_hint: &'static str,
    pub send_code: &'static str,
    pub code_intro: &'static str,
    pub code_label: &'static str,
    pub verify: &'static str,
    pub wrong: &'static str,
    pub attempts_left: &'static str,
    pub invalid: &'static str,
    pub locked: &'static str,
    pub code_expired: &'static str,
    pub too_soon: &'static str,
    pub opted_out: &'static str,
    pub session_ended: &'static str,
    pub start_again: &'static str,
    pub thread_title: &'static str,
    pub from_practice: &'static str,
    pub from_you: &'static str,
    pub reply_label: &'static str,
    pub send: &'static str,
    pub reply_sent: &'static str,
    pub reply_invalid: &'static str,
    pub no_messages: &'static str,
    pub sealed_opening: &'static str,
    pub sealed_missing: &'static str,
    pub sealed_needs_script: &'static str,
}

const EN: Strings = Strings {
    lang: "en",
    title: "Secure message",
    intro: "Someone from your care team sent you a secure message. To keep it private, please confirm who you are.",
    dob_label: "Your date of birth",
    dob_hint: "We will then text a 6-digit code to the mobile number we have on file for you.",
    send_code: "Continue",
    code_intro: "We texted a 6-digit code to the mobile number we have on file for you. It expires in 10 minutes.",
    code_label: "6-digit code",
    verify: "Verify",
    wrong: "Those details do not match our records.",
    attempts_left: "Attempts left before this link locks:",
    invalid: "This link is no longer valid. It may have expired or been replaced. Please contact your care team for a new one.",
    locked: "This link is locked after too many attempts. Please contact your care team for a new one.",
    code_expired: "That code has expired or was replaced by a newer one.",
    too_soon: "We just texted you a code. Please use it, or wait a minute before asking for another.",
    opted_out: "Your number has opted out of our texts, so we cannot send you a code. Text START to us to opt back in, or contact your care team.",
    session_ended: "For your privacy you were signed out. Please confirm who you are again.",
    start_again: "Start again",
    thread_title: "Your messages",
    from_practice: "Your care team",
    from_you: "You",
    reply_label: "Your reply",
    send: "Send reply",
    reply_sent: "Your reply was sent to your care team.",
    reply_invalid: "A reply must be between 1 and 4000 characters.",
    no_messages: "There are no messages yet.",
    sealed_opening: "Opening your message…",
    sealed_missing: "This message can only be opened from the link in the text message we sent you, in the same browser tab. Please open that link again.",
    sealed_needs_script: "This message is encrypted for your phone: please allow JavaScript to read it.",
};

const ES: Strings = Strings {
    lang: "es",
    title: "Mensaje seguro",
    intro: "Alguien de su equipo de atención le envió un mensaje seguro. Para mantenerlo privado, confirme quién es usted.",
    dob_label: "Su fecha de nacimiento",
    dob_hint: "Después le enviaremos un código de 6 dígitos al número móvil que tenemos registrado.",
    send_code: "Continuar",
    code_intro: "Le enviamos un código de 6 dígitos al número móvil que tenemos registrado. Caduca en 10 minutos.",
    code_label: "Código de 6 dígitos",
    verify: "Verificar",
    wrong: "Esos datos no coinciden con nuestros registros.",
    attempts_left: "Intentos restantes antes de que este enlace se bloquee:",
    invalid: "Este enlace ya no es válido. Puede haber caducado o haber sido reemplazado. Comuníquese con su equipo de atención para obtener uno nuevo.",
    locked: "Este enlace está bloqueado por demasiados intentos. Comuníquese con su equipo de atención para obtener uno nuevo.",
    code_expired: "Ese código caducó o fue reemplazado por uno más reciente.",
    too_soon: "Acabamos de enviarle un código. Úselo o espere un minuto antes de pedir otro.",
    opted_out: "Su número se dio de baja de nuestros mensajes, así que no podemos enviarle un código. Envíe START para volver a suscribirse o comuníquese con su equipo de atención.",
    session_ended: "Por su privacidad, se cerró su sesión. Confirme de nuevo quién es usted.",
    start_again: "Empezar de nuevo",
    thread_title: "Sus mensajes",
    from_practice: "Su equipo de atención",
    from_you: "Usted",
    reply_label: "Su respuesta",
    send: "Enviar respuesta",
    reply_sent: "Su respuesta fue enviada a su equipo de atención.",
    reply_invalid: "Una respuesta debe tener entre 1 y 4000 caracteres.",
    no_messages: "Todavía no hay mensajes.",
    sealed_opening: "Abriendo su mensaje…",
    sealed_missing: "Este mensaje solo se puede abrir desde el enlace del mensaje de texto que le enviamos, en la misma pestaña del navegador. Abra ese enlace de nuevo.",
    sealed_needs_script: "Este mensaje está cifrado para su teléfono: permita JavaScript para leerlo.",
};

pub fn strings(language: &str) -> &'static Strings {
    match language {
        "es" => &ES,
        _ => &EN,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{margin:0;font:18px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111;background:#fff}\
main{max-width:36rem;margin:0 auto;padding:1rem}\
h1{font-size:1.5rem;margin:.5rem 0 1rem}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input,textarea{font:inherit;width:100%;box-sizing:border-box;padding:.6rem;border:2px solid #555;border-radius:6px;color:#111;background:#fff}\
textarea{min-height:7rem}\
button{font:inherit;font-weight:600;margin-top:1rem;padding:.7rem 1.2rem;border:0;border-radius:6px;background:#0b4f9c;color:#fff;cursor:pointer}\
a{color:#0b4f9c}\
:focus-visible{outline:3px solid #b35c00;outline-offset:2px}\
.hint{color:#333;margin:.25rem 0}\
.alert{border-left:4px solid #a00;background:#fff4f4;padding:.6rem;margin:1rem 0}\
.ok{border-left:4px solid #06612d;background:#f1fbf4;padding:.6rem;margin:1rem 0}\
ol{list-style:none;padding:0}\
li{border:1px solid #bbb;border-radius:8px;padding:.6rem;margin:.6rem 0}\
li.you{background:#f3f6fb}\
.who{font-weight:600;font-size:.9rem;color:#333}\
.text{white-space:pre-wrap;overflow-wrap:anywhere}";

/// The pages' one script (allowed by its hash in the CSP). It keeps a key
/// arriving in the link's `#k=` fragment in this tab's session storage, takes
/// it out of the address bar, and on the thread page opens the messages their
/// writer's client sealed (`data-sealed`) with WebCrypto. The key never goes
/// to the server: browsers do not send fragments.
pub const SCRIPT: &str = "(function(){\
var token=location.pathname.split('/')[2],slot='wl_k:'+token,frag=null;\
if(location.hash.indexOf('#k=')===0){try{sessionStorage.setItem(slot,location.hash.slice(1));}catch(e){}\
history.replaceState(null,'',location.pathname+location.search);}\
try{frag=sessionStorage.getItem(slot);}catch(e){}\
var els=document.querySelectorAll('[data-sealed]');if(!els.length)return;\
function missing(){els.forEach(function(el){el.textContent=el.getAttribute('data-missing');});}\
if(!frag||!window.crypto||!crypto.subtle){missing();return;}\
function bytes(s){s=s.replace(/-/g,'+').replace(/_/g,'/');while(s.length%4)s+='=';\
var b=atob(s),o=new Uint8Array(b.length);for(var i=0;i<b.length;i++)o[i]=b.charCodeAt(i);return o;}\
var ad=new TextEncoder().encode('wardline/patient-message/v1');\
crypto.subtle.importKey('raw',bytes(frag.slice(2)),'AES-GCM',false,['decrypt']).then(function(key){\
els.forEach(function(el){var d=bytes(el.getAttribute('data-sealed'));\
crypto.subtle.decrypt({name:'AES-GCM',iv:d.slice(1,13),additionalData:ad},key,d.slice(13)).then(\
function(p){el.textContent=new TextDecoder().decode(p);},function(){el.textContent=el.getAttribute('data-missing');});});\
},missing);})();";

/// The Content-Security-Policy of every patient page: nothing but this
/// page's style and [`SCRIPT`], forms only to this server, no framing.
pub fn content_security_policy() -> &'static str {
    static CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT));
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    &CSP
}

/// A whole page.
pub fn page(t: &Strings, heading: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{heading}</h1>{body}</main><script>{SCRIPT}</script></body></html>",
        lang = t.lang,
        title = escape(heading),
        heading = escape(heading),
    )
}

fn alert(text: &str, id: &str) -> String {
    format!(
        "<p class=\"alert\" role=\"alert\" id=\"{id}\">{}</p>",
        escape(text)
    )
}

fn wrong_text(t: &Strings, left: Option<i64>) -> Option<String> {
    left.map(|n| format!("{} {} {n}", t.wrong, t.attempts_left))
}

/// Step one: the date of birth.
pub fn dob_form(t: &Strings, token: &str, left: Option<i64>) -> String {
    let error = wrong_text(t, left);
    let described = if error.is_some() {
        "dob-hint dob-error"
    } else {
        "dob-hint"
    };
    let body = format!(
        "<p>{intro}</p>{err}<form method=\"post\" action=\"/p/{token}/verify\">\
         <label for=\"dob\">{label}</label>\
         <p class=\"hint\" id=\"dob-hint\">{hint}</p>\
         <input id=\"dob\" name=\"dob\" type=\"date\" required autocomplete=\"bday\" aria-describedby=\"{described}\"{invalid}>\
         <button type=\"submit\">{send}</button></form>",
        intro = escape(t.intro),
        err = error
            .as_deref()
            .map(|e| alert(e, "dob-error"))
            .unwrap_or_default(),
        token = escape(token),
        label = escape(t.dob_label),
        hint = escape(t.dob_hint),
        invalid = if error.is_some() {
            " aria-invalid=\"true\" autofocus"
        } else {
            ""
        },
        send = escape(t.send_code),
    );
    page(t, t.title, &body)
}

/// Step two: the texted code.
pub fn code_form(t: &Strings, token: &str, challenge: &str, left: Option<i64>) -> String {
    let error = wrong_text(t, left);
    let body = format!(
        "<p id=\"code-hint\">{intro}</p>{err}<form method=\"post\" action=\"/p/{token}/code\">\
         <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
         <label for=\"code\">{label}</label>\
         <input id=\"code\" name=\"code\" required inputmode=\"numeric\" pattern=\"[0-9 \\-]{{6,8}}\" maxlength=\"8\" \
         autocomplete=\"one-time-code\" aria-describedby=\"code-hint{errref}\" autofocus{invalid}>\
         <button type=\"submit\">{verify}</button></form>",
        intro = escape(t.code_intro),
        err = error
            .as_deref()
            .map(|e| alert(e, "code-error"))
            .unwrap_or_default(),
        token = escape(token),
        challenge = escape(challenge),
        label = escape(t.code_label),
        errref = if error.is_some() { " code-error" } else { "" },
        invalid = if error.is_some() {
            " aria-invalid=\"true\""
        } else {
            ""
        },
        verify = escape(t.verify),
    );
    page(t, t.title, &body)
}

/// A notice with, where it helps, a way back to the start.
pub fn notice(t: &Strings, text: &str, restart: Option<&str>) -> String {
    let again = restart
        .map(|token| {
            format!(
                "<p><a href=\"/p/{}\">{}</a></p>",
                escape(token),
                escape(t.start_again)
            )
        })
        .unwrap_or_default();
    page(t, t.title, &format!("{}{again}", alert(text, "notice")))
}

/// The thread and the reply form.
pub fn thread(
    t: &Strings,
    token: &str,
    messages: &[PatientMessage],
    flash: Option<(&str, bool)>,
) -> String {
    let mut list = String::new();
    for m in messages {
        let (class, who) = match m.direction {
            PatientMessageDirection::ToPatient => ("", t.from_practice),
            PatientMessageDirection::FromPatient => (" class=\"you\"", t.from_you),
        };
        let when = jiff::Timestamp::from_second(m.created_at)
            .map(|ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let text = match &m.sealed {
            Some(sealed) => {
                use base64::Engine;
                format!(
                    "<p class=\"text\" aria-live=\"polite\" data-sealed=\"{}\" data-missing=\"{}\">{}</p><noscript><p>{}</p></noscript>",
                    base64::engine::general_purpose::STANDARD.encode(&sealed.0),
                    escape(t.sealed_missing),
                    escape(t.sealed_opening),
                    escape(t.sealed_needs_script),
                )
            }
            None => format!("<p class=\"text\">{}</p>", escape(&m.text)),
        };
        list.push_str(&format!(
            "<li{class}><p class=\"who\">{who} · <time datetime=\"{iso}\">{when}</time></p>{text}</li>",
            who = escape(who),
            iso = escape(&when),
        ));
    }
    let list = if messages.is_empty() {
        format!("<p>{}</p>", escape(t.no_messages))
    } else {
        format!("<ol aria-label=\"{}\">{list}</ol>", escape(t.thread_title))
    };
    let flash = match flash {
        Some((text, true)) => format!("<p class=\"ok\" role=\"status\">{}</p>", escape(text)),
        Some((text, false)) => alert(text, "reply-error"),
        None => String::new(),
    };
    let body = format!(
        "{list}{flash}<form method=\"post\" action=\"/p/{token}/reply\">\
         <label for=\"reply\">{label}</label>\
         <textarea id=\"reply\" name=\"text\" required maxlength=\"4000\"></textarea>\
         <button type=\"submit\">{send}</button></form>",
        token = escape(token),
        label = escape(t.reply_label),
        send = escape(t.send),
    );
    page(t, t.thread_title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let msg = PatientMessage {
            id: uuid::Uuid::nil(),
            direction: PatientMessageDirection::FromPatient,
            author: None,
            text: "<img src=x onerror=alert(1)>".into(),
            sealed: None,
            via: "portal".into(),
            created_at: 0,
            read_at: None,
            looks_like_opt_out: false,
        };
        let html = thread(strings("en"), "tok", &[msg], None);
        assert!(!html.contains("<img"));
    }

    #[test]
    fn every_field_has_a_label() {
        for html in [
            dob_form(strings("es"), "tok", Some(2)),
            code_form(strings("en"), "tok", "ch", None),
            thread(strings("en"), "tok", &[], None),
        ] {
            for id in ["dob", "code", "reply"] {
                if html.contains(&format!("id=\"{id}\"")) {
                    assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
                }
            }
            assert!(html.contains("<html lang=\""));
        }
    }
}
