//! `wardline serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use wardline_core::config::LogFormat;
use wardline_server::Server;

use crate::{ServerOpts, load_config};

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    server: ServerOpts,
    /// Address to listen on (default 127.0.0.1:8443).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// PEM certificate chain (with --tls-key) instead of the development certificate.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Plain HTTP; loopback addresses only, behind a TLS-terminating proxy.
    #[arg(long)]
    insecure_http: bool,
    /// Create (once) and show a demo organisation with one user per role.
    #[arg(long)]
    demo: bool,
    /// Human-readable logs instead of JSON.
    #[arg(long)]
    pretty_logs: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&args.server)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if args.tls_cert.is_some() {
        cfg.tls.cert = args.tls_cert.clone();
        cfg.tls.key = args.tls_key.clone();
    }
    cfg.tls.insecure_http |= args.insecure_http;
    if args.pretty_logs {
        cfg.log.format = LogFormat::Pretty;
    }
    cfg.validate()?;
    wardline_server::telemetry::init_logging(&cfg.log);

    let server = Server::build(cfg.clone()).await?;
    let scheme = if cfg.tls.insecure_http {
        "http"
    } else {
        "https"
    };
    let host = if cfg.listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        cfg.listen.ip().to_string()
    };
    let url = format!("{scheme}://{host}:{}", cfg.listen.port());
    let dev_cert = (!cfg.tls.insecure_http && cfg.tls.cert.is_none())
        .then(|| wardline_server::tls::dev_cert_path(&cfg.data_dir));
    let ca_flag = dev_cert
        .as_ref()
        .map(|p| format!(" --ca-cert {}", p.display()))
        .unwrap_or_default();

    // The banner goes to stdout, not the log: it may carry a one-time code.
    println!(
        "Wardline {} is starting at {url}",
        env!("CARGO_PKG_VERSION")
    );
    // The development certificate names localhost, which a browser prefers
    // to an address.
    let app = if host == "127.0.0.1" {
        format!("{scheme}://localhost:{}/", cfg.listen.port())
    } else {
        format!("{url}/")
    };
    println!(
        "  web app:  {app}{}",
        if wardline_server::routes::web_app::built() {
            ""
        } else {
            "  (not built into this server: cargo xtask web)"
        }
    );
    println!("  health:   {url}/healthz   metrics: {url}/metrics   API: {url}/api/openapi.json");
    println!(
        "  database: {}",
        if cfg.database_url().starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite (embedded)"
        }
    );
    if let Some(cert) = &dev_cert {
        println!(
            "  TLS:      self-signed development certificate {} (pass it to clients)",
            cert.display()
        );
    }
    if args.demo {
        let creds = wardline_server::demo::ensure_demo(server.state(), &cfg.data_dir)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        println!();
        println!(
            "Demo organisation '{}' (Riverside Demo Clinic). Every user's password: {}",
            creds.org, creds.password
        );
        for (role, email) in &creds.users {
            println!("  {:<20} {}", role.as_str(), email);
        }
        println!();
        println!("Sign in (you will be asked to set up an authenticator app on first sign-in):");
        println!(
            "  cargo run -q -p wardline -- login --server {url}{ca_flag} --org {} --email {}",
            creds.org, creds.users[0].1
        );
        println!(
            "No authenticator app at hand? `cargo run -q -p wardline -- totp-code <secret>` prints the current code."
        );
    } else if let Some(code) = server.setup_code() {
        println!();
        println!("First start: no organisation yet. One-time setup code: {code}");
        println!(
            "  cargo run -q -p wardline -- setup --server {url}{ca_flag} --code {code} --org-name \"My Clinic\" --org-slug my-clinic --email you@example.org --name \"Your Name\""
        );
    }
    println!();
    server.run().await?;
    Ok(())
}
