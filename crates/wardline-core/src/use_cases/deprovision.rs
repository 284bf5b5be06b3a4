//! Offboarding a user for good.

use wardline_proto::directory::{User, UserStatus};
use wardline_proto::{OrgId, UserId};

use crate::directory::DirectoryService;
use crate::error::ApiResult;
use crate::lifecycle::LifecycleService;
use crate::messaging::MessagingService;

/// Deprovisions `user` of `org` on behalf of `actor`, in the order that cuts
/// access first:
/// 1. the account becomes `deprovisioned`: sessions end at once (open
///    sockets close), the password, second factor and recovery codes are
///    erased — this is final;
/// 2. the user leaves every conversation (a membership notice in each; their
///    devices are removed from the MLS groups by the next commit, and nothing
///    is sent to them before that);
/// 3. every device of theirs is wiped (selective wipe: the device erases its
///    local store when it next connects; the wipe is audited and signed).
///
/// Steps 2 and 3 are idempotent. If they failed after step 1 (a database
/// error mid-way), calling this again finishes them and still answers with
/// the conflict "user is deprovisioned", so a retry from any entry point
/// repairs an interrupted offboarding without pretending it was new.
///
/// # Errors
/// `Conflict` when `actor == user` (nobody offboards themselves, so an
/// organisation keeps an administrator) or when the user was already
/// deprovisioned; `NotFound` for a user of another organisation.
pub async fn deprovision(
    directory: &DirectoryService,
    messaging: &MessagingService,
    lifecycle: &LifecycleService,
    org: OrgId,
    actor: UserId,
    user: UserId,
) -> ApiResult<User> {
    match directory
        .set_status(org, actor, user, UserStatus::Deprovisioned)
        .await
    {
        Ok(wire) => {
            leave_everything(messaging, lifecycle, org, actor, user).await?;
            Ok(wire)
        }
        Err(refused) => {
            if actor != user
                && directory.user_row(org, user).await?.status == UserStatus::Deprovisioned
            {
                leave_everything(messaging, lifecycle, org, actor, user).await?;
            }
            Err(refused)
        }
    }
}

async fn leave_everything(
    messaging: &MessagingService,
    lifecycle: &LifecycleService,
    org: OrgId,
    actor: UserId,
    user: UserId,
) -> ApiResult<()> {
    messaging
        .remove_from_all_conversations(org, user, actor)
        .await?;
    lifecycle.wipe_user_devices(org, user, actor).await?;
    Ok(())
}
