//! XML Encryption for an EncryptedAssertion: RSA-OAEP (SHA-1 or SHA-256) key transport, AES-CBC
//! or AES-GCM content. RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher). Decryption is
//! never authentication: the caller still demands a verified signature.

use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use crate::saml::error::Rejection;
use crate::saml::xml::{Document, Limits, NodeId, ns};
use crate::saml::xmldsig::SigningKey;
use crate::saml::xmldsig::trust::decode_base64_ws;

const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
const AES192_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes192-cbc";
const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
const AES192_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes192-gcm";
const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

fn failed(why: impl Into<String>) -> Rejection {
    Rejection::DecryptionFailed { why: why.into() }
}

#[derive(Clone, Copy)]
enum Content {
    Cbc(usize),
    Gcm(usize),
}

/// Decrypts the EncryptedAssertion at `enc` with the SP key and parses the Assertion it holds, in
/// the namespace context of the element it replaces.
pub fn decrypt_assertion(
    doc: &Document,
    enc: NodeId,
    key: &SigningKey,
    limits: &Limits,
) -> Result<Document, Rejection> {
    let data = doc
        .only_child(enc, ns::XENC, "EncryptedData")
        .map_err(|n| {
            failed(format!(
                "EncryptedAssertion holds {n} EncryptedData elements, expected one"
            ))
        })?;
    let method = doc
        .opt_child(data, ns::XENC, "EncryptionMethod")
        .ok()
        .flatten()
        .ok_or_else(|| failed("EncryptedData has no EncryptionMethod"))?;
    let alg = doc.attr(method, "Algorithm").unwrap_or("");
    let content = match alg {
        AES128_CBC => Content::Cbc(16),
        AES192_CBC => Content::Cbc(24),
        AES256_CBC => Content::Cbc(32),
        AES128_GCM => Content::Gcm(16),
        AES192_GCM => Content::Gcm(24),
        AES256_GCM => Content::Gcm(32),
        other => {
            return Err(Rejection::EncryptionAlgorithmForbidden {
                algorithm: other.to_string(),
            });
        }
    };

    // EncryptedKey inside EncryptedData/KeyInfo, or beside EncryptedData (a RetrievalMethod points
    // there; we never follow it, we just look among the siblings).
    let mut keys: Vec<NodeId> = Vec::new();
    if let Ok(Some(ki)) = doc.opt_child(data, ns::DS, "KeyInfo") {
        keys.extend(doc.children_named(ki, ns::XENC, "EncryptedKey"));
    }
    keys.extend(doc.children_named(enc, ns::XENC, "EncryptedKey"));
    if keys.is_empty() {
        return Err(failed("no EncryptedKey for the content key"));
    }
    if keys.len() > 4 {
        return Err(failed(format!(
            "{} EncryptedKey elements; at most 4 are tried",
            keys.len()
        )));
    }
    let key_len = match content {
        Content::Cbc(n) | Content::Gcm(n) => n,
    };
    let mut last_err = failed("no EncryptedKey could be decrypted with the SP key");
    let mut cek = None;
    for k in keys {
        match unwrap_key(doc, k, key) {
            Ok(v) if v.len() == key_len => {
                cek = Some(v);
                break;
            }
            Ok(v) => {
                last_err = failed(format!(
                    "content key is {} bytes, {alg} needs {key_len}",
                    v.len()
                ))
            }
            Err(e @ Rejection::EncryptionAlgorithmForbidden { .. }) => return Err(e),
            Err(e) => last_err = e,
        }
    }
    let cek = cek.ok_or(last_err)?;

    let cipher_value = cipher_value(doc, data)?;
    let plain = match content {
        Content::Cbc(n) => decrypt_cbc(n, &cek, &cipher_value)?,
        Content::Gcm(n) => decrypt_gcm(n, &cek, &cipher_value)?,
    };
    let context = doc.in_scope_namespaces(enc);
    let out = Document::parse_in_context(&plain, limits, context)
        .map_err(|e| failed(format!("decrypted content is not XML: {e}")))?;
    if !out.is(out.root(), ns::SAML, "Assertion") {
        return Err(failed(format!(
            "decrypted content is {}, not saml:Assertion",
            out.qname(out.root())
        )));
    }
    Ok(out)
}

fn cipher_value(doc: &Document, parent: NodeId) -> Result<Vec<u8>, Rejection> {
    let cd = doc
        .only_child(parent, ns::XENC, "CipherData")
        .map_err(|_| failed("CipherData missing or repeated"))?;
    let cv = doc
        .only_child(cd, ns::XENC, "CipherValue")
        .map_err(|_| failed("CipherValue missing (CipherReference is not supported)"))?;
    let text = doc
        .simple_text(cv)
        .ok_or_else(|| failed("CipherValue holds elements"))?;
    decode_base64_ws(&text).map_err(|e| failed(format!("CipherValue is not base64: {e}")))
}

fn unwrap_key(doc: &Document, ek: NodeId, key: &SigningKey) -> Result<Vec<u8>, Rejection> {
    let method = doc
        .opt_child(ek, ns::XENC, "EncryptionMethod")
        .ok()
        .flatten()
        .ok_or_else(|| failed("EncryptedKey has no EncryptionMethod"))?;
    let alg = doc.attr(method, "Algorithm").unwrap_or("");
    let digest_of = |n: Option<NodeId>| -> Result<MessageDigest, Rejection> {
        match n.and_then(|d| doc.attr(d, "Algorithm")) {
            None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => Ok(MessageDigest::sha1()),
            Some("http://www.w3.org/2001/04/xmlenc#sha256") => Ok(MessageDigest::sha256()),
            Some(other) => Err(Rejection::EncryptionAlgorithmForbidden {
                algorithm: other.to_string(),
            }),
        }
    };
    let dm = doc.children_named(method, ns::DS, "DigestMethod").next();
    let (oaep_md, mgf_md) = match alg {
        // rsa-oaep-mgf1p: MGF1 is always with SHA-1; the OAEP digest may be given.
        RSA_OAEP_MGF1P => (digest_of(dm)?, MessageDigest::sha1()),
        RSA_OAEP => {
            let mgf = doc
                .children_named(method, ns::XENC11, "MGF")
                .next()
                .and_then(|m| doc.attr(m, "Algorithm"));
            let mgf_md = match mgf {
                None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => MessageDigest::sha1(),
                Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => MessageDigest::sha256(),
                Some(other) => {
                    return Err(Rejection::EncryptionAlgorithmForbidden {
                        algorithm: other.to_string(),
                    });
                }
            };
            (digest_of(dm)?, mgf_md)
        }
        RSA_1_5 => {
            return Err(Rejection::EncryptionAlgorithmForbidden {
                algorithm: alg.to_string(),
            });
        }
        other => {
            return Err(Rejection::EncryptionAlgorithmForbidden {
                algorithm: other.to_string(),
            });
        }
    };
    let wrapped = cipher_value(doc, ek)?;
    let pkey = key.pkey();
    let mut d = Decrypter::new(pkey).map_err(|_| failed("SP key cannot decrypt"))?;
    d.set_rsa_padding(Padding::PKCS1_OAEP)
        .map_err(|_| failed("SP key is not RSA"))?;
    d.set_rsa_oaep_md(oaep_md)
        .map_err(|_| failed("OAEP digest"))?;
    d.set_rsa_mgf1_md(mgf_md)
        .map_err(|_| failed("MGF1 digest"))?;
    let len = d
        .decrypt_len(&wrapped)
        .map_err(|_| failed("EncryptedKey does not fit the SP key"))?;
    let mut out = vec![0u8; len];
    let n = d
        .decrypt(&wrapped, &mut out)
        .map_err(|_| failed("EncryptedKey does not decrypt with the SP key"))?;
    out.truncate(n);
    Ok(out)
}

fn decrypt_cbc(key_len: usize, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Rejection> {
    let cipher = match key_len {
        16 => Cipher::aes_128_cbc(),
        24 => Cipher::aes_192_cbc(),
        _ => Cipher::aes_256_cbc(),
    };
    if data.len() < 32 || !data.len().is_multiple_of(16) {
        return Err(failed(
            "CBC ciphertext length is not a whole number of blocks after the IV",
        ));
    }
    let (iv, ct) = data.split_at(16);
    let mut c =
        Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).map_err(|_| failed("AES-CBC setup"))?;
    c.pad(false);
    let mut out = vec![0u8; ct.len() + 16];
    let mut n = c
        .update(ct, &mut out)
        .map_err(|_| failed("AES-CBC decryption"))?;
    n += c
        .finalize(&mut out[n..])
        .map_err(|_| failed("AES-CBC decryption"))?;
    out.truncate(n);
    // XML Encryption padding (§5.2.1): the last octet is the pad length; the others are arbitrary.
    let pad = usize::from(*out.last().ok_or_else(|| failed("empty plaintext"))?);
    if pad == 0 || pad > 16 || pad > out.len() {
        return Err(failed("AES-CBC padding is invalid"));
    }
    out.truncate(out.len() - pad);
    Ok(out)
}

fn decrypt_gcm(key_len: usize, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Rejection> {
    let cipher = match key_len {
        16 => Cipher::aes_128_gcm(),
        24 => Cipher::aes_192_gcm(),
        _ => Cipher::aes_256_gcm(),
    };
    if data.len() < 12 + 16 {
        return Err(failed("GCM ciphertext too short"));
    }
    let (iv, rest) = data.split_at(12);
    let (ct, tag) = rest.split_at(rest.len() - 16);
    openssl::symm::decrypt_aead(cipher, key, Some(iv), &[], ct, tag)
        .map_err(|_| failed("AES-GCM authentication failed"))
}
