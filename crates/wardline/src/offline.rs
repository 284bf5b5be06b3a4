//! Host-operator commands that work on the data directory and the database
//! directly: they need the key file, which the API never exposes.

use std::sync::Arc;

use wardline_core::audit::{AuditLog, NewEvent};
use wardline_core::clock::SystemClock;
use wardline_core::vault::rewrap_all;
use wardline_crypto::{KeyProvider, LocalKeyFile};
use wardline_proto::Role;
use wardline_proto::audit::AuditAction;
use wardline_proto::directory::CreateUserRequest;
use wardline_server::Server;
use wardline_store::Store;
use wardline_store_sql::SqlStore;

use crate::term::say;
use crate::{NewOrgArgs, ServerOpts, input, load_config};

#[derive(clap::Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    server: ServerOpts,
    #[command(flatten)]
    new_org: NewOrgArgs,
}

pub async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.server)?;
    let server = Server::build(cfg).await?;
    let password = input::secret("Administrator password: ")?;
    let dir = &server.state().directory;
    let new = args.new_org;
    let org = dir
        .create_org(&new.org_name, &new.org_slug)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let admin = dir
        .create_user(
            org.id,
            CreateUserRequest {
                email: new.email,
                display_name: new.name,
                phone: None,
                roles: vec![Role::OrgAdmin],
                password,
                // Typed by the administrator for themself.
                password_change_required: false,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    server
        .state()
        .audit
        .record(
            NewEvent {
                org_id: Some(org.id),
                ..NewEvent::service("cli", AuditAction::Setup)
            }
            .target("user", admin.id),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    say!(
        "created organisation {} ({}) with administrator {} ({})",
        org.name,
        org.slug,
        admin.email,
        admin.id
    );
    say!("the administrator sets up an authenticator at first sign-in (`wardline login`)");
    Ok(())
}

#[derive(clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    server: ServerOpts,
    /// After rewrapping, delete the old KEKs from the key file. Without it they
    /// stay (harmless), so that a backup of the key file taken earlier still
    /// opens backups of the database taken earlier.
    #[arg(long)]
    retire_old: bool,
}

pub async fn rotate_kek(args: RotateArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.server)?;
    let keys = Arc::new(LocalKeyFile::open_or_create(&cfg.key_file())?);
    let store = Arc::new(SqlStore::connect(&cfg.database_url()).await?);
    let audit = AuditLog::start(
        store.clone(),
        keys.clone(),
        Arc::new(SystemClock),
        &cfg.audit,
    )
    .await?;
    let old = keys.current_kek_id();
    let new = keys.rotate()?;
    let moved = rewrap_all(keys.as_ref(), store.as_ref()).await?;
    say!("new key-encryption key {new} (was {old}); rewrapped {moved} data keys");
    if args.retire_old {
        // A server that wrapped a key under the old KEK just before noticing the
        // rotation is caught by this second pass.
        let late = rewrap_all(keys.as_ref(), store.as_ref()).await?;
        let counts = store.count_data_keys_by_kek().await?;
        if counts.iter().any(|(k, n)| *k != new && *n > 0) {
            anyhow::bail!("data keys are still wrapped under old KEKs ({counts:?}); not retiring");
        }
        let retired = keys.retire_all_but_current()?;
        say!("rewrapped {late} more; retired {}", retired.join(", "));
    }
    audit
        .record(
            NewEvent::service("cli", AuditAction::KekRotate)
                .target("kek", &new)
                .reason(format!(
                    "rewrapped {moved} data keys{}",
                    if args.retire_old {
                        "; old KEKs retired"
                    } else {
                        ""
                    }
                )),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    for (kek, n) in store.count_data_keys_by_kek().await? {
        say!("  {kek}: {n} data keys");
    }
    store.close().await;
    Ok(())
}
