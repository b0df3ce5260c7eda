//! Temporary credentials: issuing them (as the queue does for each claimed run) and the
//! signature and key computations `hawk_auth.rs` uses to check a certificate in a Hawk `ext`.
//!
//! The scheme, learned from the `taskcluster` 114.0.0 client (`src/credentials.rs`,
//! `Certificate::sign` and `gen_temp_access_token`) and the published manual page on temporary
//! credentials:
//! - the certificate is JSON `{version: 1, scopes, start, expiry, seed, signature, issuer?}`,
//!   `start`/`expiry` in milliseconds since the epoch, `seed` 44 URL-safe characters;
//! - `signature` = base64(HMAC-SHA256(issuer's accessToken, lines joined by `\n`)), the lines being
//!   `version:1`, then for named credentials `clientId:<id>` and `issuer:<issuer>`, then
//!   `seed:<seed>`, `start:<ms>`, `expiry:<ms>`, `scopes:` and one line per scope;
//! - the temporary accessToken = base64url-without-padding(HMAC-SHA256(issuer's accessToken, seed)).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A temporary-credentials certificate, as carried in `credentials.certificate` (a JSON string)
/// and in the Hawk `ext.certificate` (a JSON object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Certificate {
    /// Always 1.
    pub version: u32,
    /// The scopes the temporary credentials carry.
    pub scopes: Vec<String>,
    /// Validity start, milliseconds since the epoch.
    pub start: i64,
    /// Validity end, milliseconds since the epoch.
    pub expiry: i64,
    /// Random seed from which the temporary accessToken is derived.
    pub seed: String,
    /// Base64 HMAC-SHA256 signature by the issuer's accessToken.
    pub signature: String,
    /// The issuing clientId; present for named temporary credentials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Credentials as the queue returns them: `{clientId, accessToken, certificate}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TempCredentials {
    /// The temporary clientId (for named credentials) or the issuer's clientId.
    pub client_id: String,
    /// The derived temporary accessToken.
    pub access_token: String,
    /// The certificate, serialized as a JSON string.
    pub certificate: String,
}

fn hmac_sha256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The temporary accessToken for a certificate `seed` issued by a client with `issuer_token`.
pub fn temp_access_token(issuer_token: &str, seed: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac_sha256(issuer_token, seed.as_bytes()))
}

impl Certificate {
    /// The text that `signature` signs; `client_id` is used only when `issuer` is set.
    pub fn signed_text(&self, client_id: &str) -> String {
        let mut lines = vec![format!("version:{}", self.version)];
        if let Some(issuer) = &self.issuer {
            lines.push(format!("clientId:{client_id}"));
            lines.push(format!("issuer:{issuer}"));
        }
        lines.push(format!("seed:{}", self.seed));
        lines.push(format!("start:{}", self.start));
        lines.push(format!("expiry:{}", self.expiry));
        lines.push("scopes:".to_string());
        lines.extend(self.scopes.iter().cloned());
        lines.join("\n")
    }

    /// The signature this certificate should carry when issued by a client with `issuer_token`.
    pub fn expected_signature(&self, issuer_token: &str, client_id: &str) -> String {
        STANDARD.encode(hmac_sha256(issuer_token, self.signed_text(client_id).as_bytes()))
    }
}

/// Random URL-safe text: `bytes` random bytes in base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A slugid as Taskcluster makes them (`slugid.nice()`): a version-4 UUID whose
/// first bit is 0, as 22 URL-safe characters, so it matches the schemas' taskId
/// pattern (`^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$`).
pub fn slugid() -> String {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf[0] &= 0x7f;
    buf[6] = (buf[6] & 0x0f) | 0x40;
    buf[8] = (buf[8] & 0x3f) | 0x80;
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod slug_tests {
    #[test]
    fn slugids_are_nice_v4_slugs() {
        for _ in 0..200 {
            let id = super::slugid();
            let b = id.as_bytes();
            assert_eq!(b.len(), 22, "{id}");
            assert!((b'Q'..=b'T').contains(&b[8]), "{id}");
            assert!(b"CGKOSWaeimquy26-".contains(&b[10]), "{id}");
            assert!(b"AQgw".contains(&b[21]), "{id}");
            assert!(
                b[0].is_ascii_uppercase() || b[0].is_ascii_lowercase() && b[0] <= b'f',
                "{id}"
            );
        }
    }
}

/// Issue named temporary credentials `client_id` from the issuer (`issuer_id`, `issuer_token`),
/// valid from `start` to `expiry` with `scopes`.
pub fn issue(
    issuer_id: &str,
    issuer_token: &str,
    client_id: &str,
    scopes: Vec<String>,
    start: DateTime<Utc>,
    expiry: DateTime<Utc>,
) -> TempCredentials {
    let mut cert = Certificate {
        version: 1,
        scopes,
        start: start.timestamp_millis(),
        expiry: expiry.timestamp_millis(),
        seed: format!("{}{}", slugid(), slugid()),
        signature: String::new(),
        issuer: Some(issuer_id.to_string()),
    };
    cert.signature = cert.expected_signature(issuer_token, client_id);
    TempCredentials {
        client_id: client_id.to_string(),
        access_token: temp_access_token(issuer_token, &cert.seed),
        certificate: serde_json::to_string(&cert).expect("a certificate serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_verifies_and_token_derives() {
        let now = Utc::now();
        let creds = issue(
            "issuer",
            "secret",
            "temp/1",
            vec!["a".into()],
            now,
            now + chrono::Duration::hours(1),
        );
        let cert: Certificate = serde_json::from_str(&creds.certificate).unwrap();
        assert_eq!(cert.seed.len(), 44);
        assert_eq!(cert.signature, cert.expected_signature("secret", "temp/1"));
        assert_ne!(cert.signature, cert.expected_signature("secret", "temp/2"));
        assert_eq!(creds.access_token, temp_access_token("secret", &cert.seed));
        assert!(
            cert.signed_text("temp/1")
                .starts_with("version:1\nclientId:temp/1\nissuer:issuer\nseed:")
        );
        assert!(cert.signed_text("temp/1").ends_with("\nscopes:\na"));
    }
}
