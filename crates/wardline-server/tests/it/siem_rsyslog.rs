//! SIEM export against a real rsyslog (Debian's `rsyslog`, `rsyslog-gnutls`
//! for TLS), started by the test on a loopback port with its own
//! configuration: RFC 5424 over TCP and over TLS (RFC 5425), the JSON Lines
//! file, and an outage that loses nothing. Outside CI a missing rsyslogd skips
//! with a message; in CI it fails (`.ci/run` installs it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Backend, TestServer};
use wardline_proto::audit::{AuditAction, AuditEvent};
use wardline_store::AuditStore;

fn rsyslogd() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/sbin/rsyslogd");
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("rsyslogd is not installed; .ci/run installs rsyslog and rsyslog-gnutls");
    }
    eprintln!("SKIPPED: install rsyslog and rsyslog-gnutls to run the SIEM export tests");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Rsyslog {
    child: Child,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts rsyslogd in the foreground, receiving on `port` and writing
/// `msgid|structured-data|msg` lines to `out`.
fn start_rsyslog(
    bin: &Path,
    dir: &Path,
    port: u16,
    out: &Path,
    tls: Option<(&Path, &Path)>,
) -> Rsyslog {
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let mut conf = format!("global(workDirectory=\"{}\")\n", work.display());
    match tls {
        Some((cert, key)) => conf.push_str(&format!(
            "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{c}\" \
             DefaultNetstreamDriverCertFile=\"{c}\" DefaultNetstreamDriverKeyFile=\"{k}\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n",
            c = cert.display(),
            k = key.display()
        )),
        None => conf.push_str("module(load=\"imtcp\")\n"),
    }
    // Beside the raw fields, what a stock SIEM pipeline does with MSG: the
    // receiver of real-world case 16 (`fixtures/realworld/16-rsyslog-rw.conf`),
    // `mmjsonparse` with no cookie, its result as JSON.
    conf.push_str(&format!(
        "input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
         module(load=\"mmjsonparse\")\n\
         template(name=\"wl\" type=\"string\" string=\"%msgid%|%structured-data%|%msg%\\n\")\n\
         template(name=\"wljson\" type=\"string\" string=\"%$!all-json%\\n\")\n\
         *.* action(type=\"omfile\" file=\"{}\" template=\"wl\")\n\
         *.* action(type=\"mmjsonparse\" cookie=\"\")\n\
         *.* action(type=\"omfile\" file=\"{}\" template=\"wljson\")\n",
        out.display(),
        out.with_extension("parsed").display()
    ));
    let conf_path = dir.join(format!("rsyslog-{port}.conf"));
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join(format!("rsyslog-{port}.pid")))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rsyslogd");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Rsyslog { child }
}

/// The events in rsyslog's output file, parsed back from the JSON payload.
fn received(out: &Path) -> Vec<(String, String, AuditEvent)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, '|');
            let msgid = parts.next().unwrap().to_owned();
            let sd = parts.next().unwrap().to_owned();
            // As received: no stripping of a byte-order mark or anything else.
            let msg = parts.next().unwrap();
            let event: AuditEvent =
                serde_json::from_str(msg).unwrap_or_else(|e| panic!("payload {msg:?}: {e}"));
            (msgid, sd, event)
        })
        .collect()
}

async fn wait_for_all(t: &TestServer, out: &Path) -> Vec<(String, String, AuditEvent)> {
    let last = t.sql.last_audit_entry().await.unwrap().unwrap().seq;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received(out);
        let seqs: BTreeSet<i64> = got.iter().map(|(_, _, e)| e.seq).collect();
        if (1..=last).all(|s| seqs.contains(&s)) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "rsyslog received {} of {last} entries",
            seqs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tcp_and_jsonl_export_survive_an_outage() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("received.log");
    let jsonl = dir.path().join("audit.jsonl");
    let rsyslog = start_rsyslog(&bin, dir.path(), port, &out, None);
    let jsonl_cfg = jsonl.clone();
    let t = TestServer::start_with(Backend::Sqlite, |c| {
        c.audit.syslog_url = Some(format!("tcp://127.0.0.1:{port}"));
        c.audit.jsonl_path = Some(jsonl_cfg);
    })
    .await
    .unwrap();
    let admin = t.setup_org("alpha").await;
    admin.client.list_users().await.unwrap();
    t.fill_audit(20).await;
    let got = wait_for_all(&t, &out).await;

    // Header, structured data and payload as a SIEM sees them.
    let (msgid, sd, event) = got
        .iter()
        .find(|(_, _, e)| e.action == AuditAction::UsersList)
        .unwrap();
    assert_eq!(msgid, "user.list");
    assert!(
        sd.starts_with(&format!(
            "[wardline@32473 seq=\"{}\" action=\"user.list\" outcome=\"success\" org=\"{}\" actor=\"{}\"",
            event.seq, admin.user.org_id, admin.user.id
        )),
        "{sd}"
    );
    let stored = t
        .sql
        .audit_entries(event.seq - 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        *event,
        wardline_core::audit::record::decode_for_wire(&stored).unwrap()
    );
    // Real-world case 16: mmjsonparse finds the event's fields at the top
    // level (with the RFC 5424 byte-order mark it found no JSON at all).
    let parsed = std::fs::read_to_string(out.with_extension("parsed")).unwrap();
    let fields: Vec<serde_json::Value> = parsed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(!fields.is_empty());
    assert!(
        fields
            .iter()
            .all(|v| v["seq"].is_i64() && v["action"].is_string() && v["outcome"].is_string()),
        "{parsed}"
    );
    assert!(
        fields.iter().any(|v| v["action"] == "user.list"),
        "{parsed}"
    );
    // The old form, kept as the case's fixture, is what failed.
    let old = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/realworld/16-minimal-msg-with-bom.txt"
    ));
    assert!(serde_json::from_str::<serde_json::Value>(old.trim_end()).is_err());

    // The SIEM goes away; entries written meanwhile arrive once it is back.
    drop(rsyslog);
    t.fill_audit(25).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_restart: BTreeSet<i64> = received(&out).iter().map(|(_, _, e)| e.seq).collect();
    let last = t.sql.last_audit_entry().await.unwrap().unwrap().seq;
    assert!(
        !before_restart.contains(&last),
        "nothing can arrive while rsyslog is down"
    );
    let _rsyslog = start_rsyslog(&bin, dir.path(), port, &out, None);
    let got = wait_for_all(&t, &out).await;
    assert!(got.len() as i64 >= last);

    // The JSON Lines file has every entry exactly as stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<AuditEvent> = std::fs::read_to_string(&jsonl)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seqs: BTreeSet<i64> = lines.iter().map(|e| e.seq).collect();
        if (1..=last).all(|s| seqs.contains(&s)) {
            break;
        }
        assert!(Instant::now() < deadline, "JSON Lines export incomplete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_rfc5425() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("received-tls.log");
    // The server's own development certificate (localhost, 127.0.0.1) serves
    // as rsyslog's; the exporter trusts exactly it.
    let cert_dir = tempfile::tempdir().unwrap();
    let cfg = wardline_server::Config {
        data_dir: cert_dir.path().to_owned(),
        ..wardline_server::Config::default()
    };
    let paths = wardline_server::tls::ensure_certificate(&cfg).unwrap();
    let _rsyslog = start_rsyslog(
        &bin,
        dir.path(),
        port,
        &out,
        Some((&paths.cert, &paths.key)),
    );
    let ca = paths.cert.clone();
    let t = TestServer::start_with(Backend::Sqlite, |c| {
        c.audit.syslog_url = Some(format!("tls://localhost:{port}"));
        c.audit.syslog_ca_file = Some(ca);
    })
    .await
    .unwrap();
    t.fill_audit(10).await;
    let got = wait_for_all(&t, &out).await;
    assert!(got.iter().all(|(msgid, _, _)| msgid == "audit.search"));
}
