//! The periodic refresh of IdP metadata URLs: every [`REFRESH_SECS`] each IdP with a metadata
//! URL is fetched through the service's outbound client (1 MiB at most, 10 s) and its signing
//! certificates taken ([`super::audit::Admin::idp_metadata_refresh`]); a failure is kept on the
//! IdP and shown on its row, and the trusted certificates stay.

use super::IdentityProvider;
use super::admin::{AdminError, MAX_METADATA_BYTES, Result};
use super::audit::{Admin, RefreshOutcome};
use crate::outbound::Outbound;
use crate::saml::UnixTime;

/// How often an IdP's metadata URL is fetched.
pub const REFRESH_SECS: i64 = 6 * 3600;

/// The actor the background refresh writes in the audit log.
pub const ACTOR: &str = "system:metadata-refresh";

/// Fetches `idp`'s metadata URL now and takes what it gives.
pub async fn refresh_idp(
    admin: &Admin<'_>,
    outbound: &Outbound,
    idp: &IdentityProvider,
) -> Result<RefreshOutcome> {
    let Some(url) = idp.metadata_url.as_deref() else {
        return Err(AdminError::Invalid {
            field: Some("metadata_url"),
            message: format!(
                "identity provider {:?} has no metadata URL to refresh from",
                idp.name
            ),
        });
    };
    let fetched = outbound
        .get(url, MAX_METADATA_BYTES)
        .await
        .map_err(|e| format!("{url}: {e}"));
    admin.idp_metadata_refresh(idp, fetched).await
}

/// Whether `idp`'s metadata URL is due for a fetch at `now`.
pub fn due(idp: &IdentityProvider, now: UnixTime) -> bool {
    idp.metadata_url.is_some()
        && idp
            .metadata_status
            .as_ref()
            .is_none_or(|s| now.millis() - s.checked_at.millis() >= REFRESH_SECS * 1000)
}

/// Refreshes every IdP that is due, one after the other; how many were fetched.
pub async fn refresh_due(admin: &Admin<'_>, outbound: &Outbound) -> Result<usize> {
    let mut n = 0;
    for idp in admin.store.idp_list().await? {
        if !due(&idp, admin.now) {
            continue;
        }
        match refresh_idp(admin, outbound, &idp).await? {
            RefreshOutcome::Failed(e) => {
                tracing::warn!(idp = %idp.name, error = %e, "IdP metadata refresh failed; the trusted certificates stay")
            }
            RefreshOutcome::Changed => {
                tracing::info!(idp = %idp.name, "IdP metadata refresh: new signing certificates taken")
            }
            _ => {}
        }
        n += 1;
    }
    Ok(n)
}
