//! tower-sessions on our [`Store`]: the session record is kept as JSON in the `sessions` table,
//! and the signed-in agent's IdP login (IdP, NameID, SessionIndex) is copied into columns so an
//! IdP-initiated LogoutRequest finds every session it names. Expiry follows our [`Clock`], not
//! the wall clock: the agent's session ends at `AgentSession::expires_at`.

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use super::{AgentSession, SessionRow, Store, StoreError};
use crate::clock::Clock;
use crate::saml::UnixTime;

/// The key of the [`AgentSession`] in a session's data.
pub const AGENT_KEY: &str = "agent";

/// How long a session without a signed-in agent lives (none is saved today; a safe default).
const ANONYMOUS_LIFETIME_SECS: i64 = 3600;

/// The agent a stored record holds, if any.
pub fn agent_of(data: &[u8]) -> Option<AgentSession> {
    let record: Record = serde_json::from_slice(data).ok()?;
    record
        .data
        .get(AGENT_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

#[derive(Clone)]
pub struct StoreSessions {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StoreSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSessions")
    }
}

impl StoreSessions {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        StoreSessions { store, clock }
    }

    fn row(&self, record: &Record) -> session_store::Result<SessionRow> {
        let data =
            serde_json::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let agent: Option<AgentSession> = record
            .data
            .get(AGENT_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let expires_at = agent
            .as_ref()
            .map(|a| a.expires_at)
            .unwrap_or_else(|| self.clock.now().plus_secs(ANONYMOUS_LIFETIME_SECS));
        Ok(SessionRow {
            id: record.id.to_string(),
            data,
            expires_at,
            agent,
        })
    }
}

fn backend(e: StoreError) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for StoreSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let row = self.row(record)?;
            if self.store.session_create(&row).await.map_err(backend)? {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let row = self.row(record)?;
        self.store.session_save(&row).await.map_err(backend)
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let now: UnixTime = self.clock.now();
        let Some(row) = self
            .store
            .session_load(&session_id.to_string(), now)
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&row.data)
            .map(Some)
            .map_err(|e| session_store::Error::Decode(e.to_string()))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.store
            .session_delete(&session_id.to_string())
            .await
            .map_err(backend)
    }
}
