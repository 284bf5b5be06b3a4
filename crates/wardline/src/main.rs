//! `wardline`: the one binary. `serve` runs the server; `login`, `whoami` and
//! `admin …` talk to a running server as a client; `admin bootstrap` and
//! `admin rotate-kek` work on the data directory and database directly (host
//! operator tasks that need the key file). `audit verify` also reads the
//! database directly; the other `audit` commands use the API. `chat …` is an
//! end-to-end encrypted messaging client.

mod audit;
mod chat;
mod input;
mod lifecycle;
mod offline;
mod patients;
mod remote;
mod routing;
mod serve;
mod term;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wardline", version, about = "Secure clinical messaging")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options naming the server's configuration (for `serve` and offline admin).
#[derive(clap::Args, Clone, Debug)]
pub struct ServerOpts {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "WARDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (database, key file, development certificate).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// A new organisation and its first administrator (`setup` and `admin bootstrap`).
#[derive(clap::Args, Clone, Debug)]
pub struct NewOrgArgs {
    #[arg(long)]
    pub org_name: String,
    #[arg(long)]
    pub org_slug: String,
    /// The administrator's e-mail.
    #[arg(long)]
    pub email: String,
    /// The administrator's display name.
    #[arg(long)]
    pub name: String,
}

/// Options for commands that talk to a running server.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientOpts {
    /// Profile file (holds the session token; mode 0600).
    #[arg(long, env = "WARDLINE_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Create the first organisation with the setup code printed at first start.
    Setup(remote::SetupArgs),
    /// Sign in (password, then authenticator code) and keep the session in the profile.
    Login(remote::LoginArgs),
    /// End the session in the profile.
    Logout(ClientOpts),
    /// Show who the profile is signed in as.
    Whoami(ClientOpts),
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit trail: verify it, search it, report on a patient, export it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// End-to-end encrypted conversations (MLS) from this terminal.
    #[command(subcommand)]
    Chat(chat::ChatCommand),
    /// Patient texting: records, consent, templates, secure messages, threads.
    #[command(subcommand)]
    Patients(patients::PatientsCommand),
    /// Clinical routing: departments, care teams, clinical roles, presence,
    /// on-call schedules (iCalendar), reports, the break-glass register.
    #[command(subcommand)]
    Routing(routing::RoutingCommand),
    /// Print the current code for a base32 TOTP secret (a development aid, like
    /// an authenticator app). The key as the web app shows it, in groups of
    /// four, is taken as it is: spaces and dashes are ignored, case too.
    TotpCode {
        #[arg(required = true, num_args = 1..)]
        secret: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Users (via the API, as the signed-in administrator).
    #[command(subcommand)]
    Users(remote::UsersCommand),
    /// Sessions (via the API).
    #[command(subcommand)]
    Sessions(remote::SessionsCommand),
    /// List the built-in roles and their permissions (via the API).
    Roles(ClientOpts),
    /// Show or change the organisation's session and MFA policy (via the API).
    Policy(remote::PolicyArgs),
    /// Lifecycle policy (retention, lifespans, recall window), its preview,
    /// deletion runs and their signed receipts.
    #[command(subcommand)]
    Lifecycle(lifecycle::LifecycleCommand),
    /// The legal hold register.
    #[command(subcommand)]
    Holds(lifecycle::HoldsCommand),
    /// Lost devices: remote wipe and its confirmations.
    #[command(subcommand)]
    Devices(lifecycle::DevicesCommand),
    /// Create an organisation and its first administrator directly in the
    /// database (host operator; no server needed).
    Bootstrap(offline::BootstrapArgs),
    /// Generate a new key-encryption key and rewrap every data key under it,
    /// while the server keeps running.
    RotateKek(offline::RotateArgs),
}

/// The arguments with a `--json` given before the subcommand moved to the
/// end, where every command that prints takes it (`wardline --json chat list`
/// is `wardline chat list --json`).
fn args_with_json_last() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first_word = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map_or(args.len(), |i| i + 1);
    if let Some(i) = args[..first_word].iter().position(|a| a == "--json") {
        let json = args.remove(i);
        args.push(json);
    }
    args
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(args_with_json_last());
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Setup(args) => remote::setup(args).await,
        Command::Login(args) => remote::login(args).await,
        Command::Logout(opts) => remote::logout(opts).await,
        Command::Whoami(opts) => remote::whoami(opts).await,
        Command::Admin(AdminCommand::Users(cmd)) => remote::users(cmd).await,
        Command::Admin(AdminCommand::Sessions(cmd)) => remote::sessions(cmd).await,
        Command::Admin(AdminCommand::Roles(opts)) => remote::roles(opts).await,
        Command::Admin(AdminCommand::Policy(args)) => remote::policy(args).await,
        Command::Admin(AdminCommand::Lifecycle(cmd)) => lifecycle::lifecycle(cmd).await,
        Command::Admin(AdminCommand::Holds(cmd)) => lifecycle::holds(cmd).await,
        Command::Admin(AdminCommand::Devices(cmd)) => lifecycle::devices(cmd).await,
        Command::Admin(AdminCommand::Bootstrap(args)) => offline::bootstrap(args).await,
        Command::Admin(AdminCommand::RotateKek(args)) => offline::rotate_kek(args).await,
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Chat(cmd) => chat::run(cmd).await,
        Command::Patients(cmd) => patients::run(cmd).await,
        Command::Routing(cmd) => routing::run(cmd).await,
        Command::TotpCode { secret } => totp_code(&secret.concat()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn totp_code(secret: &str) -> anyhow::Result<()> {
    let key: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let bytes = totp_rs::Secret::try_from_base32(key.to_uppercase())
        .map_err(|_| anyhow::anyhow!("not a base32 secret"))?;
    let t = totp_rs::Builder::new().with_secret(bytes).build()?;
    term::say!("{}", t.generate_current());
    Ok(())
}

/// Loads the server configuration with command-line overrides applied.
pub fn load_config(opts: &ServerOpts) -> anyhow::Result<wardline_server::Config> {
    let mut cfg = wardline_server::Config::load(opts.config.as_deref())?;
    if let Some(d) = &opts.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(u) = &opts.database_url {
        cfg.database_url = Some(u.clone());
    }
    Ok(cfg)
}
