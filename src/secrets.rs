//! Secrets at rest that must be read back (a TOTP shared secret; later an OAuth client secret):
//! AES-256-GCM under one service key, each value stored as `v1.<key id>.<base64(nonce ‖
//! ciphertext ‖ tag)>`, with what the value is for as associated data (a value copied into
//! another column or row does not decrypt there).
//!
//! The key comes from `secrets_key_file` (`SSOGATE_SECRETS_KEY_FILE`): 64 hex digits. With none
//! configured, `secrets.key` in the data directory, made (mode 0600) on the first start, so that
//! the default needs no configuration. The store remembers the key's ID: a start with another key
//! is refused, naming both IDs, rather than failing later on every value.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use sha2::{Digest, Sha256};

use crate::rng::Rng;

/// The settings key under which the store keeps the ID of the key its values use.
pub const SETTING_KEY_ID: &str = "secrets_key_id";

const VERSION: &str = "v1";
const NONCE: usize = 12;
const TAG: usize = 16;

/// The service's secrets key. Its `Debug` shows the ID only.
pub struct SecretsKey {
    key: zeroize::Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("the value is not an encrypted secret (v1.<key id>.<base64>)")]
    Malformed,
    #[error("the value was encrypted with key {found}, not with the configured key {configured}")]
    OtherKey { found: String, configured: String },
    #[error("the value does not decrypt (altered, or stored for another purpose)")]
    Undecryptable,
}

impl SecretsKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SecretsKey {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        SecretsKey {
            key: zeroize::Zeroizing::new(bytes),
            id,
        }
    }

    /// A key for this process only (tests, and states built without a configured one).
    pub fn ephemeral(rng: &dyn Rng) -> SecretsKey {
        let mut b = [0u8; 32];
        rng.fill(&mut b);
        SecretsKey::from_bytes(b)
    }

    /// The first 8 hex digits of the key's SHA-256: names it without giving it away.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the key file (64 hex digits, white space around them ignored).
    pub fn read(path: &Path) -> Result<SecretsKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("secrets key file {}: {e}", path.display()))?;
        let mut b = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), b.as_mut()).map_err(|_| {
            format!(
                "secrets key file {}: expected 64 hexadecimal digits (32 bytes)",
                path.display()
            )
        })?;
        Ok(SecretsKey::from_bytes(*b))
    }

    /// The configured key file, or the data directory's `secrets.key` (made when missing).
    pub fn load_or_create(
        configured: Option<&Path>,
        data_dir: &Path,
        rng: &dyn Rng,
    ) -> Result<SecretsKey, String> {
        if let Some(p) = configured {
            return SecretsKey::read(p);
        }
        let path: PathBuf = data_dir.join("secrets.key");
        if path.exists() {
            return SecretsKey::read(&path);
        }
        let key = SecretsKey::ephemeral(rng);
        write_private(&path, &format!("{}\n", hex::encode(key.key.as_ref())))
            .map_err(|e| format!("cannot create the secrets key {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), key_id = %key.id, "created the secrets key");
        Ok(key)
    }

    /// Encrypts `plain` for `purpose` (e.g. `totp:user:12`).
    pub fn encrypt(&self, rng: &dyn Rng, purpose: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE];
        rng.fill(&mut nonce);
        let mut tag = [0u8; TAG];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.key.as_ref(),
            Some(&nonce),
            purpose.as_bytes(),
            plain,
            &mut tag,
        )
        .expect("invariant: AES-256-GCM with a 32-byte key and a 12-byte nonce encrypts");
        let mut all = Vec::with_capacity(NONCE + ct.len() + TAG);
        all.extend_from_slice(&nonce);
        all.extend_from_slice(&ct);
        all.extend_from_slice(&tag);
        format!(
            "{VERSION}.{}.{}",
            self.id,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(all)
        )
    }

    /// Decrypts a value [`SecretsKey::encrypt`] made for the same `purpose`.
    pub fn decrypt(
        &self,
        purpose: &str,
        stored: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SecretsError> {
        let mut parts = stored.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretsError::Malformed);
        };
        if id != self.id {
            return Err(SecretsError::OtherKey {
                found: id.chars().take(16).collect(),
                configured: self.id.clone(),
            });
        }
        let all = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(data)
            .map_err(|_| SecretsError::Malformed)?;
        if all.len() < NONCE + TAG {
            return Err(SecretsError::Malformed);
        }
        let (nonce, rest) = all.split_at(NONCE);
        let (ct, tag) = rest.split_at(rest.len() - TAG);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            self.key.as_ref(),
            Some(nonce),
            purpose.as_bytes(),
            ct,
            tag,
        )
        .map(zeroize::Zeroizing::new)
        .map_err(|_| SecretsError::Undecryptable)
    }
}

/// Writes a file only its owner may read (created with mode 0600, never widened).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SystemRng;

    #[test]
    fn a_value_decrypts_only_with_its_key_and_purpose() {
        let k = SecretsKey::ephemeral(&SystemRng);
        let v = k.encrypt(&SystemRng, "totp:user:1", b"shared secret");
        assert!(v.starts_with(&format!("v1.{}.", k.id())));
        assert!(!v.contains("shared"));
        assert_eq!(
            k.decrypt("totp:user:1", &v).unwrap().as_slice(),
            b"shared secret"
        );
        // Another row's purpose, another key, an altered byte, garbage: refused, never a panic.
        assert_eq!(
            k.decrypt("totp:user:2", &v),
            Err(SecretsError::Undecryptable)
        );
        let other = SecretsKey::ephemeral(&SystemRng);
        assert!(matches!(
            other.decrypt("totp:user:1", &v),
            Err(SecretsError::OtherKey { .. })
        ));
        let mut altered = v.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            k.decrypt("totp:user:1", &String::from_utf8(altered).unwrap()),
            Err(SecretsError::Undecryptable)
        );
        for bad in [
            "",
            "v1",
            "v1.x",
            "v2.a.b",
            &format!("v1.{}.!!", k.id()),
            &format!("v1.{}.AA", k.id()),
        ] {
            assert!(k.decrypt("totp:user:1", bad).is_err(), "{bad:?}");
        }
        // Two encryptions of one value differ (a fresh nonce each).
        assert_ne!(v, k.encrypt(&SystemRng, "totp:user:1", b"shared secret"));
        assert!(!format!("{k:?}").contains(&hex::encode(k.key.as_ref())));
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("ssogate-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = SecretsKey::load_or_create(None, &dir, &SystemRng).unwrap();
        let b = SecretsKey::load_or_create(None, &dir, &SystemRng).unwrap();
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("secrets.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join("bad.key"), "not hex").unwrap();
        let e = SecretsKey::read(&dir.join("bad.key")).unwrap_err();
        assert!(e.contains("64 hexadecimal digits"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
