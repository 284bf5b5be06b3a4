//! What the web app's worker needs from the server to run in a browser, and
//! what a page of another site must not get (issue 21): the sync socket
//! opened by a one-time ticket (a browser cannot send `Authorization` with an
//! upgrade), and requests from foreign pages (`Origin`) refused before any
//! route runs.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{self, Message};
use wardline_proto::Role;

use crate::common::*;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/api/v1/sync/ws?{query}` as a browser would: no `Authorization`,
/// the given `Origin`. The refusal's status and body if the server refuses.
async fn open_socket(t: &TestServer, query: &str, origin: &str) -> Result<Socket, (u16, String)> {
    use rustls_pki_types::pem::PemObject;
    use tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/v1/sync/ws?{query}",
        t.url.replacen("https", "wss", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&t.ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(config));
    match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
        .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(resp)) => Err((
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("socket: {e}"),
    }
}

/// The next text frame's `type`, or `"closed"`.
async fn next_frame(socket: &mut Socket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
        {
            Some(Ok(Message::Text(text))) => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                return v["type"].as_str().unwrap_or_default().to_owned();
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return "closed".into(),
            Some(Ok(_)) => {}
        }
    }
}

async fn ticket(t: &TestServer, token: &str) -> String {
    let resp = t
        .http()
        .post(format!("{}/api/v1/sync/ticket", t.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["expires_at"].as_i64(), Some(t.now() + 30));
    v["ticket"].as_str().unwrap().to_owned()
}

async fn a_socket_ticket_opens_one_socket_for_its_session(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let _chat = devices.of(&nurse, "browser").await;
    let own = t.url.clone();

    // A page of another site cannot open it, and its try does not use up
    // the ticket.
    let t1 = ticket(&t, &nurse.token).await;
    let (status, body) = open_socket(&t, &format!("after=0&ticket={t1}"), "https://evil.example")
        .await
        .unwrap_err();
    assert_eq!(status, 403, "{body}");

    // The app's own page: the socket streams the inbox.
    let mut socket = open_socket(&t, &format!("after=0&ticket={t1}"), &own)
        .await
        .expect("the ticket opens the socket");
    assert_eq!(next_frame(&mut socket).await, "idle");

    // Used once.
    let (status, body) = open_socket(&t, &format!("after=0&ticket={t1}"), &own)
        .await
        .unwrap_err();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("socket ticket"), "{body}");
    // Unknown, and lapsed after 30 seconds.
    let (status, _) = open_socket(&t, "after=0&ticket=wlt_made_up", &own)
        .await
        .unwrap_err();
    assert_eq!(status, 401);
    let t2 = ticket(&t, &nurse.token).await;
    t.clock.advance(31);
    let (status, _) = open_socket(&t, &format!("after=0&ticket={t2}"), &own)
        .await
        .unwrap_err();
    assert_eq!(status, 401);
    // Neither a token nor a ticket.
    let (status, _) = open_socket(&t, "after=0", &own).await.unwrap_err();
    assert_eq!(status, 401);

    // The socket a ticket opened ends with its session, which it looks at
    // by id (it never held the token).
    let t3 = ticket(&t, &nurse.token).await;
    let mut second = open_socket(&t, &format!("after=0&ticket={t3}"), &own)
        .await
        .unwrap();
    assert_eq!(next_frame(&mut second).await, "idle");
    let t4 = ticket(&t, &nurse.token).await;
    admin
        .client
        .revoke_sessions(nurse.user.id, None)
        .await
        .unwrap();
    assert_eq!(next_frame(&mut second).await, "closed");
    // A ticket issued before the revocation opens nothing after it.
    let (status, _) = open_socket(&t, &format!("after=0&ticket={t4}"), &own)
        .await
        .unwrap_err();
    assert_eq!(status, 401);
    // Without a session, no ticket.
    let resp = t
        .http()
        .post(format!("{}/api/v1/sync/ticket", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn pages_of_other_sites_are_refused_before_any_route(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let login = |origin: Option<&'static str>, site: Option<&'static str>| {
        let mut req =
            t.http()
                .post(format!("{}/api/v1/auth/login", t.url))
                .json(&serde_json::json!({
                    "org": "alpha",
                    "email": nurse.user.email,
                    "password": PASSWORD,
                    "device_id": nurse.device_id,
                }));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    // A browser without Sec-Fetch-Site: the Origin decides.
    for forged in [
        "https://evil.example",
        "http://127.0.0.1",
        "https://127.0.0.1.evil.example",
    ] {
        let resp = login(Some(forged), None).await.unwrap();
        assert_eq!(resp.status(), 403, "{forged}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "forbidden", "{forged}");
    }
    // A browser that says where the request comes from: only this origin,
    // or the user's own navigation.
    for (origin, site) in [
        (Some("null"), "cross-site"),
        (None, "cross-site"),
        (Some("https://evil.example"), "same-site"),
    ] {
        let resp = login(origin, Some(site)).await.unwrap();
        assert_eq!(resp.status(), 403, "{origin:?} {site}");
    }
    // A foreign page's form posted by navigation is refused too; following a
    // link from another site (the intranet, webmail) to a page is not.
    let resp = t
        .http()
        .post(format!("{}/api/v1/auth/login", t.url))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = t
        .http()
        .get(format!("{}/healthz", t.url))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "a link from another site opens its page"
    );
    // An authenticated call from a foreign page is refused as well.
    let resp = t
        .http()
        .get(format!("{}/api/v1/auth/session", t.url))
        .bearer_auth(&nurse.token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // … and changes nothing: signing out from a foreign page leaves the
    // session open.
    let resp = t
        .http()
        .post(format!("{}/api/v1/auth/logout", t.url))
        .bearer_auth(&nurse.token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    nurse
        .client
        .current_session()
        .await
        .expect("still signed in");
    // The server's own page; an older browser's own form post under
    // no-referrer ("null", no Sec-Fetch-Site); a client that is not a
    // browser.
    let own: &'static str = Box::leak(t.url.clone().into_boxed_str());
    for (origin, site) in [
        (Some(own), None),
        (Some(own), Some("same-origin")),
        (Some("null"), None),
        (None, Some("none")),
        (None, None),
    ] {
        let resp = login(origin, site).await.unwrap();
        assert_eq!(resp.status(), 200, "{origin:?}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["step"], "mfa_required", "{origin:?}");
    }
}

/// How the server ended the socket: the close frame's code, or none when
/// the connection just dropped.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the server answers within 10 s")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return None,
        }
    }
}

/// What a crafted page (or a broken client) can send on the sync socket
/// besides acknowledgements: each ends that socket with the RFC 6455 code
/// for it — never a silent drop (an oversized frame used to be one) — and
/// the device's next socket works.
async fn bad_socket_frames_close_it_with_a_reason_and_change_nothing(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let _chat = devices.of(&nurse, "browser").await;
    let own = t.url.clone();
    let cases: Vec<(&str, Message, u16)> = vec![
        ("not JSON", Message::Text("ack 5".into()), 1008),
        (
            "an unknown frame",
            Message::Text(r#"{"type":"send","text":"x"}"#.into()),
            1008,
        ),
        (
            "an ack without a number",
            Message::Text(r#"{"type":"ack","up_to":"all"}"#.into()),
            1008,
        ),
        (
            "a binary frame",
            Message::Binary(vec![0, 159, 146, 150].into()),
            1003,
        ),
        (
            "a frame over 4 KiB",
            Message::Text(
                format!(r#"{{"type":"ack","up_to":1,"pad":"{}"}}"#, "x".repeat(8192)).into(),
            ),
            1002,
        ),
    ];
    for (what, frame, code) in cases {
        let ticket = ticket(&t, &nurse.token).await;
        let mut socket = open_socket(&t, &format!("after=0&ticket={ticket}"), &own)
            .await
            .unwrap();
        assert_eq!(next_frame(&mut socket).await, "idle", "{what}");
        futures_util::SinkExt::send(&mut socket, frame)
            .await
            .unwrap();
        assert_eq!(close_code(&mut socket).await, Some(code), "{what}");
    }
    // The device's next socket works as before.
    let ticket = ticket(&t, &nurse.token).await;
    let mut socket = open_socket(&t, &format!("after=0&ticket={ticket}"), &own)
        .await
        .unwrap();
    assert_eq!(next_frame(&mut socket).await, "idle");
}

both_backends!(
    a_socket_ticket_opens_one_socket_for_its_session,
    pages_of_other_sites_are_refused_before_any_route,
    bad_socket_frames_close_it_with_a_reason_and_change_nothing,
);
