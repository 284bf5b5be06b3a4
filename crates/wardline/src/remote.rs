//! Commands that talk to a running server through the client SDK.

use crate::term::say;
use std::path::{Path, PathBuf};

use anyhow::Context;
use uuid::Uuid;
use wardline_client::{ApiClient, Profile};
use wardline_proto::Role;
use wardline_proto::auth::{LoginRequest, LoginStep, SetupRequest};
use wardline_proto::directory::{CreateUserRequest, OrgPolicy, UpdateUserRequest, User};

use crate::{ClientOpts, NewOrgArgs, input};

pub(crate) fn profile_path(opts: &ClientOpts) -> PathBuf {
    opts.profile.clone().unwrap_or_else(Profile::default_path)
}

fn client_for(server: &str, ca_cert: Option<&Path>) -> anyhow::Result<ApiClient> {
    let pem = ca_cert
        .map(|p| {
            std::fs::read(p).with_context(|| format!("reading CA certificate {}", p.display()))
        })
        .transpose()?;
    Ok(ApiClient::new(server, pem.as_deref())?)
}

/// The signed-in client from the profile.
pub(crate) fn signed_in(opts: &ClientOpts) -> anyhow::Result<(ApiClient, Profile)> {
    let path = profile_path(opts);
    let profile = Profile::load(&path)?.with_context(|| {
        format!(
            "no profile at {}; run `wardline login` first",
            path.display()
        )
    })?;
    let token = profile
        .token
        .clone()
        .context("not signed in; run `wardline login`")?;
    let client = client_for(&profile.server, profile.ca_cert.as_deref())?.with_token(Some(token));
    Ok((client, profile))
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    say!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct SetupArgs {
    #[arg(long)]
    server: String,
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// The one-time setup code the server printed at first start.
    #[arg(long)]
    code: String,
    #[command(flatten)]
    new_org: NewOrgArgs,
}

pub async fn setup(a: SetupArgs) -> anyhow::Result<()> {
    let client = client_for(&a.server, a.ca_cert.as_deref())?;
    let password = input::secret("Administrator password: ")?;
    let resp = client
        .setup(&SetupRequest {
            setup_code: a.code,
            org_name: a.new_org.org_name,
            org_slug: a.new_org.org_slug,
            admin_email: a.new_org.email,
            admin_display_name: a.new_org.name,
            admin_password: password,
        })
        .await?;
    say!(
        "created organisation {} ({}); administrator {}. Next: wardline login --server {} --org {} --email {}",
        resp.organisation.name,
        resp.organisation.slug,
        resp.admin.email,
        a.server,
        resp.organisation.slug,
        resp.admin.email
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    opts: ClientOpts,
    /// Server URL, e.g. https://127.0.0.1:8443 (default: the profile's).
    #[arg(long)]
    server: Option<String>,
    /// CA certificate to trust (the server's development certificate).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Organisation slug (default: the profile's).
    #[arg(long)]
    org: Option<String>,
    /// E-mail (default: the profile's).
    #[arg(long)]
    email: Option<String>,
    /// Authenticator or recovery code (otherwise prompted).
    #[arg(long)]
    code: Option<String>,
}

pub async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let path = profile_path(&a.opts);
    let old = Profile::load(&path)?;
    let pick =
        |given: Option<String>, from: Option<String>, what: &str| -> anyhow::Result<String> {
            given
                .or(from)
                .with_context(|| format!("--{what} is required (no profile yet)"))
        };
    let server = pick(a.server, old.as_ref().map(|p| p.server.clone()), "server")?;
    let org = pick(a.org, old.as_ref().map(|p| p.org.clone()), "org")?;
    let email = pick(a.email, old.as_ref().map(|p| p.email.clone()), "email")?;
    // Kept absolute: the profile is used from any directory.
    let ca_cert = a
        .ca_cert
        .map(std::path::absolute)
        .transpose()
        .context("the --ca-cert path")?
        .or_else(|| old.as_ref().and_then(|p| p.ca_cert.clone()));
    // Keep the device id across sign-ins on this installation.
    let device_id = old
        .as_ref()
        .filter(|p| p.server == server)
        .map(|p| p.device_id)
        .unwrap_or_else(Uuid::new_v4);
    // The mark of an earlier sign-in to this same account from this device.
    let device_token = old
        .as_ref()
        .filter(|p| p.server == server && p.org == org && p.email == email)
        .and_then(|p| p.device_token.clone());
    let mut client = client_for(&server, ca_cert.as_deref())?;

    let password = zeroize::Zeroizing::new(input::secret("Password: ")?);
    let resp = client
        .login(&LoginRequest {
            org: org.clone(),
            email: email.clone(),
            password: password.to_string(),
            device_id,
            device_token: device_token.clone(),
        })
        .await?;
    let session = match resp.step {
        LoginStep::Complete => resp.session.context("server sent no session")?,
        LoginStep::MfaRequired => {
            let code = match a.code {
                Some(c) => c,
                None => input::line("Authenticator code (or a recovery code): ")?,
            };
            client
                .verify_mfa(
                    resp.mfa_token
                        .as_deref()
                        .context("server sent no MFA token")?,
                    &code,
                )
                .await?
        }
        LoginStep::MfaEnrolmentRequired => {
            let session = resp.session.context("server sent no session")?;
            client.set_token(Some(session.token.clone()));
            let enrol = client.enroll_totp().await?;
            eprintln!(
                "Your organisation requires a second factor. Add this account to an authenticator app:"
            );
            eprintln!("  {}", enrol.otpauth_uri);
            eprintln!("  (or enter the secret by hand: {})", enrol.secret_base32);
            let code = input::line("Code shown by the app: ")?;
            let confirmed = client.confirm_totp(&code).await?;
            eprintln!("Authenticator set up. Keep these one-time recovery codes somewhere safe:");
            for c in &confirmed.recovery_codes {
                eprintln!("  {c}");
            }
            session
        }
    };
    // A password an administrator set is temporary: the user's own first.
    if session.password_change_required {
        client.set_token(Some(session.token.clone()));
        eprintln!(
            "Your password was set by an administrator. Choose your own (12 characters or more, not a common one):"
        );
        let own = zeroize::Zeroizing::new(input::secret("New password: ")?);
        let again = zeroize::Zeroizing::new(input::secret("New password again: ")?);
        if *own != *again {
            anyhow::bail!("the two new passwords differ; sign in again to choose one");
        }
        client.change_password(&password, &own).await?;
        eprintln!("Password changed.");
    }
    let profile = Profile {
        server,
        ca_cert,
        org,
        email,
        device_id,
        token: Some(session.token.clone()),
        device_token: session.remembered_device.clone().or(device_token),
    };
    profile.save(&path)?;
    eprintln!(
        "signed in; session kept in {} (ends after {} s idle)",
        path.display(),
        session.idle_timeout_secs
    );
    Ok(())
}

pub async fn logout(opts: ClientOpts) -> anyhow::Result<()> {
    let (client, mut profile) = signed_in(&opts)?;
    // Forget the token locally even if the server cannot be reached.
    let remote = client.logout().await;
    profile.token = None;
    profile.save(&profile_path(&opts))?;
    remote?;
    eprintln!("signed out");
    Ok(())
}

pub async fn whoami(opts: ClientOpts) -> anyhow::Result<()> {
    let (client, _) = signed_in(&opts)?;
    let s = client.current_session().await?;
    if opts.json {
        return print_json(&s);
    }
    say!(
        "{} <{}> in {} ({})",
        s.user.display_name,
        s.user.email,
        s.organisation.name,
        s.organisation.slug
    );
    say!(
        "roles: {}",
        s.user
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!(
        "permissions: {}",
        s.permissions
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!("session {} on device {}", s.session_id, s.device_id);
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    List(ClientOpts),
    /// Create a user; the initial password is read from the prompt or stdin.
    /// It is temporary: the user chooses their own at first sign-in.
    Create {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
        /// One or more of: org_admin, compliance_officer, physician, nurse, medical_assistant, front_desk.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// Read the new user's initial password from the first line of
        /// standard input instead of prompting for it (it is prompted for,
        /// without echo, on a terminal; read from standard input otherwise).
        #[arg(long)]
        password_stdin: bool,
        /// The password is already the user's own choice: no change at first
        /// sign-in (by default the user must choose their own).
        #[arg(long)]
        no_password_change: bool,
    },
    Show {
        #[command(flatten)]
        opts: ClientOpts,
        /// User id or e-mail.
        user: String,
    },
    Update {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<Role>,
    },
    /// Grant or remove the compliance officer role (as a compliance officer;
    /// administrators cannot, and nobody changes their own roles).
    ComplianceOfficer {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(value_parser = ["grant", "remove"])]
        action: String,
        /// User id or e-mail.
        user: String,
    },
    Suspend {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
    },
    Reactivate {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
    },
    Deprovision {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
    },
    /// Clear a user's authenticator (lost phone).
    ResetMfa {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!(
            "unknown role {s:?}; one of {}",
            Role::ALL
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Accepts a user id or an e-mail address.
pub async fn resolve(client: &ApiClient, user: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(user) {
        return Ok(id);
    }
    let wanted = user.trim().to_lowercase();
    client
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.email == wanted)
        .map(|u| u.id)
        .with_context(|| format!("no user {user}"))
}

/// The signed-in client and the id of the user named on the command line.
async fn client_and_user(opts: &ClientOpts, user: &str) -> anyhow::Result<(ApiClient, Uuid)> {
    let (c, _) = signed_in(opts)?;
    let id = resolve(&c, user).await?;
    Ok((c, id))
}

fn print_users(users: &[User], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&users);
    }
    say!(
        "{:<36}  {:<34}  {:<26}  {:<13}  {:<3}  roles",
        "id",
        "email",
        "name",
        "status",
        "mfa"
    );
    for u in users {
        say!(
            "{:<36}  {:<34}  {:<26}  {:<13}  {:<3}  {}",
            u.id,
            u.email,
            u.display_name,
            u.status.as_str(),
            if u.mfa_enabled { "yes" } else { "no" },
            u.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    Ok(())
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::List(opts) => {
            let (c, _) = signed_in(&opts)?;
            print_users(&c.list_users().await?, opts.json)
        }
        UsersCommand::Create {
            opts,
            email,
            name,
            phone,
            roles,
            password_stdin,
            no_password_change,
        } => {
            let (c, _) = signed_in(&opts)?;
            let password = if password_stdin {
                input::stdin_line("the new user's initial password (--password-stdin)")?
            } else {
                input::secret(
                    "Initial password for the new user (temporary: they choose their own at first sign-in): ",
                )?
            };
            let u = c
                .create_user(&CreateUserRequest {
                    email,
                    display_name: name,
                    phone,
                    roles,
                    password,
                    password_change_required: !no_password_change,
                })
                .await?;
            if !no_password_change {
                eprintln!(
                    "the password is temporary: {} chooses their own at first sign-in",
                    u.email
                );
            }
            print_users(&[u], opts.json)
        }
        UsersCommand::Show { opts, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            print_users(&[c.user(id).await?], opts.json)
        }
        UsersCommand::Update {
            opts,
            user,
            email,
            name,
            phone,
            roles,
        } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            let req = UpdateUserRequest {
                email,
                display_name: name,
                phone,
                clear_phone: false,
                roles: (!roles.is_empty()).then_some(roles),
            };
            print_users(&[c.update_user(id, &req).await?], opts.json)
        }
        UsersCommand::ComplianceOfficer { opts, action, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            print_users(
                &[c.set_compliance_officer(id, action == "grant").await?],
                opts.json,
            )
        }
        UsersCommand::Suspend { opts, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            print_users(&[c.suspend_user(id).await?], opts.json)
        }
        UsersCommand::Reactivate { opts, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            print_users(&[c.reactivate_user(id).await?], opts.json)
        }
        UsersCommand::Deprovision { opts, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            print_users(&[c.deprovision_user(id).await?], opts.json)
        }
        UsersCommand::ResetMfa { opts, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            c.reset_mfa(id).await?;
            eprintln!("authenticator cleared; the user enrols again at next sign-in");
            Ok(())
        }
    }
}

#[derive(clap::Subcommand)]
pub enum SessionsCommand {
    /// A user's live sessions.
    List {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
    },
    /// End a user's sessions now (all, or one device's).
    Revoke {
        #[command(flatten)]
        opts: ClientOpts,
        user: String,
        #[arg(long)]
        device: Option<Uuid>,
    },
}

pub async fn sessions(cmd: SessionsCommand) -> anyhow::Result<()> {
    match cmd {
        SessionsCommand::List { opts, user } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            let list = c.list_sessions(id).await?;
            if opts.json {
                return print_json(&list);
            }
            say!(
                "{:<36}  {:<36}  {:<12}  {:<12}  mfa",
                "session",
                "device",
                "created",
                "last seen"
            );
            for s in list {
                say!(
                    "{:<36}  {:<36}  {:<12}  {:<12}  {}",
                    s.id,
                    s.device_id,
                    s.created_at,
                    s.last_seen_at,
                    s.mfa_complete
                );
            }
            Ok(())
        }
        SessionsCommand::Revoke { opts, user, device } => {
            let (c, id) = client_and_user(&opts, &user).await?;
            let r = c.revoke_sessions(id, device).await?;
            if opts.json {
                return print_json(&r);
            }
            say!("revoked {} session(s)", r.revoked);
            Ok(())
        }
    }
}

pub async fn roles(opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let roles = c.roles().await?;
    if opts.json {
        return print_json(&roles);
    }
    for r in roles {
        say!(
            "{:<20} {}",
            r.role.as_str(),
            r.permissions
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[arg(long)]
    idle_timeout_secs: Option<i64>,
    #[arg(long)]
    absolute_lifetime_secs: Option<i64>,
    #[arg(long)]
    mfa_required: Option<bool>,
    /// Any other part of the policy, as a JSON merge patch (RFC 7396), e.g.
    /// '{"messaging":{"max_group_members":200},"routing":{"break_glass_minutes":30}}'
    /// (`null` restores a default).
    #[arg(long)]
    patch: Option<String>,
}

pub async fn policy(a: PolicyArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    if let Some(patch) = &a.patch {
        let patch: serde_json::Value =
            serde_json::from_str(patch).context("--patch must be a JSON object")?;
        c.patch_policy(&patch).await?;
    }
    let mut p: OrgPolicy = c.policy().await?;
    if a.idle_timeout_secs.is_some()
        || a.absolute_lifetime_secs.is_some()
        || a.mfa_required.is_some()
    {
        p.idle_timeout_secs = a.idle_timeout_secs.unwrap_or(p.idle_timeout_secs);
        p.absolute_lifetime_secs = a.absolute_lifetime_secs.unwrap_or(p.absolute_lifetime_secs);
        p.mfa_required = a.mfa_required.unwrap_or(p.mfa_required);
        p = c.set_policy(&p).await?;
    }
    print_json(&p)
}
