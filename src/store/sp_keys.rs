//! SP private keys at rest: every store keeps them encrypted under the secrets key
//! (AES-256-GCM, `v1.<key id>.<base64>`), and decrypts each stored value once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::domain::{Secret, ServiceProvider, SpId};
use crate::secrets::SecretsKey;

use super::{Result, StoreError};

/// The associated data of an encrypted SP private key.
pub(crate) const PURPOSE: &str = "sp private key";

#[derive(Default)]
pub(crate) struct SpKeys {
    secrets: OnceLock<Arc<SecretsKey>>,
    /// Per (SP, next key?): the stored (encrypted) key and its plaintext. Each stored value is
    /// decrypted once; a request compares the stored text instead of hashing it.
    opened: Mutex<HashMap<(SpId, bool), (String, Secret)>>,
}

impl SpKeys {
    /// Keys under a fresh key of this process only (in-memory test stores).
    pub(crate) fn ephemeral() -> SpKeys {
        let k = SpKeys::default();
        let _ = k
            .secrets
            .set(Arc::new(SecretsKey::ephemeral(&crate::rng::SystemRng)));
        k
    }

    /// Loads the secrets key; a store holds one key for its life.
    pub(crate) fn set(&self, key: Arc<SecretsKey>) -> Result<()> {
        if let Some(k) = self.secrets.get() {
            return if k.id() == key.id() {
                Ok(())
            } else {
                Err(StoreError::Unavailable(format!(
                    "the store already uses secrets key {}, not {}",
                    k.id(),
                    key.id()
                )))
            };
        }
        let _ = self.secrets.set(key);
        Ok(())
    }

    /// A stored value encrypted, unless it already is (`v1.` prefix).
    pub(crate) fn seal_stored(key: &SecretsKey, v: &Option<String>) -> (Option<String>, bool) {
        match v {
            Some(v) if !v.starts_with("v1.") => (
                Some(key.encrypt(&crate::rng::SystemRng, PURPOSE, v.as_bytes())),
                true,
            ),
            other => (other.clone(), false),
        }
    }

    /// A private key as stored: encrypted under the secrets key.
    pub(crate) fn seal(&self, k: Option<&Secret>) -> Result<Option<String>> {
        let Some(k) = k else { return Ok(None) };
        let key = self.secrets.get().ok_or_else(|| {
            StoreError::Unavailable(
                "no secrets key is loaded to encrypt the SP private key with".into(),
            )
        })?;
        Ok(Some(key.encrypt(
            &crate::rng::SystemRng,
            PURPOSE,
            k.secret().as_bytes(),
        )))
    }

    /// A stored private key in clear (decrypted once per stored value).
    pub(crate) fn open(
        &self,
        sp: &ServiceProvider,
        next: bool,
        stored: Option<String>,
    ) -> Result<Option<Secret>> {
        let Some(stored) = stored else {
            return Ok(None);
        };
        if !stored.starts_with("v1.") {
            // Kept in clear by a version before schema 5 and not yet encrypted (a store opened
            // to read only): the service encrypts it when it next opens the store.
            return Ok(Some(Secret::new(stored)));
        }
        let mut m = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, k)) = m.get(&(sp.id, next))
            && *known == stored
        {
            return Ok(Some(k.clone()));
        }
        let cannot = |why: String| {
            StoreError::Corrupt(format!(
                "the private key of service provider {} cannot be read: {why}",
                sp.host_url
            ))
        };
        let key = self
            .secrets
            .get()
            .ok_or_else(|| cannot("no secrets key is loaded".into()))?;
        let plain = key
            .decrypt(PURPOSE, &stored)
            .map_err(|e| cannot(e.to_string()))?;
        let plain =
            String::from_utf8(plain.to_vec()).map_err(|_| cannot("it is not text".into()))?;
        if m.len() >= 256 {
            m.clear();
        }
        let k = Secret::new(plain);
        m.insert((sp.id, next), (stored, k.clone()));
        Ok(Some(k))
    }
}
