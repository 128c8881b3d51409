//! Signed checkpoints: a JWS (ES256, the gateway's signing key, `kid` in its JWKS) over
//! (position, head hash, time). A checkpoint vouches for every event up to its position: anyone
//! with the public key can check that a log still extends it, so a rewrite of the whole chain —
//! even one with consistent hashes — shows.
//!
//! [`Checkpointer`] makes them: after a commit that takes the chain `checkpoint_every` events
//! past the last checkpoint, and on a timer when the chain grew at all. With several gateway
//! instances on one database each may make one; the store skips one that comes too close after
//! another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audit::AuditLog;
use crate::jose::keys::SigningKey;
use crate::store_error::StoreError;

/// The JWS `typ` of a checkpoint: never confused with an access token.
pub const CHECKPOINT_TYP: &str = "bankgate-audit-checkpoint+jwt";

/// A signed statement that the chain's hash at `position` was `hash` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: i64,
    #[serde(with = "hex::serde")]
    pub hash: [u8; 32],
    pub time: DateTime<Utc>,
    /// The signing key's id (RFC 7638 thumbprint, as in the JWKS).
    pub kid: String,
    /// The compact JWS whose payload says all of the above.
    pub jws: String,
}

/// The signed payload.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    position: i64,
    /// Hex.
    hash: String,
    time: DateTime<Utc>,
}

/// Why a checkpoint does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint JWS: {0}")]
    Malformed(String),
    #[error("signed by unknown key {0:?}")]
    UnknownKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("the stored checkpoint differs from what its JWS says")]
    Mismatch,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Signs a checkpoint at (`position`, `hash`) now.
pub fn sign(
    key: &SigningKey,
    position: i64,
    hash: [u8; 32],
) -> Result<Checkpoint, CheckpointError> {
    let time = Utc::now().trunc_subsecs(6);
    let claims = Claims {
        position,
        hash: hex::encode(hash),
        time,
    };
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(CHECKPOINT_TYP.to_owned());
    header.kid = Some(key.kid.clone());
    let jws = jsonwebtoken::encode(&header, &claims, &key.encoding)
        .map_err(|error| CheckpointError::Sign(error.to_string()))?;
    Ok(Checkpoint {
        position,
        hash,
        time,
        kid: key.kid.clone(),
        jws,
    })
}

/// Public keys that may have signed checkpoints, by key id.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

/// The parts of a JWK we read.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    kid: Option<String>,
    d: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

impl VerifyingKeys {
    /// The public half of `key`.
    pub fn of(key: &SigningKey) -> VerifyingKeys {
        let mut keys = VerifyingKeys::default();
        keys.keys.insert(key.kid.clone(), key.decoding.clone());
        keys
    }

    /// Adds a public key (e.g. one that signed before a key rotation).
    pub fn insert(&mut self, key: &crate::jose::keys::VerifyingKey) {
        self.keys.insert(key.kid.clone(), key.decoding.clone());
    }

    /// The P-256 keys of a JWKS document (`{"keys": [...]}`); other keys are ignored, private
    /// keys refused.
    pub fn from_jwks(json: &str) -> Result<VerifyingKeys, CheckpointError> {
        let jwks: Jwks = serde_json::from_str(json)
            .map_err(|error| CheckpointError::Malformed(format!("JWKS: {error}")))?;
        let mut keys = VerifyingKeys::default();
        for jwk in jwks.keys {
            if jwk.d.is_some() {
                return Err(CheckpointError::Malformed(
                    "JWKS holds a private key; give the public keys only".into(),
                ));
            }
            let (Some(kid), Some(x), Some(y)) = (jwk.kid, jwk.x, jwk.y) else {
                continue;
            };
            if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
                continue;
            }
            let key = DecodingKey::from_ec_components(&x, &y)
                .map_err(|error| CheckpointError::Malformed(format!("key {kid}: {error}")))?;
            keys.keys.insert(kid, key);
        }
        Ok(keys)
    }

    /// Adds the keys of `other`.
    pub fn extend(&mut self, other: VerifyingKeys) {
        self.keys.extend(other.keys);
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a JWS and returns the checkpoint it signs.
    pub fn open(&self, jws: &str) -> Result<Checkpoint, CheckpointError> {
        let jws = jws.trim();
        let header = jsonwebtoken::decode_header(jws)
            .map_err(|error| CheckpointError::Malformed(error.to_string()))?;
        if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(CHECKPOINT_TYP) {
            return Err(CheckpointError::Malformed(
                "not an ES256 audit checkpoint".into(),
            ));
        }
        let kid = header.kid.unwrap_or_default();
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| CheckpointError::UnknownKey(kid.clone()))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(jws, key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => CheckpointError::BadSignature,
                _ => CheckpointError::Malformed(error.to_string()),
            })?
            .claims;
        let hash = hex::decode(&claims.hash)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| CheckpointError::Malformed("hash is not 32 bytes of hex".into()))?;
        Ok(Checkpoint {
            position: claims.position,
            hash,
            time: claims.time,
            kid,
            jws: jws.to_owned(),
        })
    }

    /// Checks a stored checkpoint: its JWS verifies and says what the row says.
    pub fn check(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let signed = self.open(&checkpoint.jws)?;
        if signed.position != checkpoint.position
            || signed.hash != checkpoint.hash
            || signed.kid != checkpoint.kid
        {
            return Err(CheckpointError::Mismatch);
        }
        Ok(())
    }
}

/// A key id for display: the first characters of the thumbprint.
pub fn short_kid(kid: &str) -> &str {
    kid.get(..12).unwrap_or(kid)
}

/// Makes checkpoints for one gateway instance.
pub struct Checkpointer {
    store: Arc<dyn AuditLog>,
    signer: Option<Arc<SigningKey>>,
    every: i64,
    /// The highest checkpoint position this instance knows of (-1: not looked yet).
    last: AtomicI64,
    /// The newest head this instance committed.
    head: Mutex<(i64, [u8; 32])>,
    /// One checkpoint task at a time from the writer.
    busy: Arc<AtomicBool>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("every", &self.every)
            .field("signs", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Checkpoints of `store`'s chain every `every` events, signed by `signer` (none without).
    pub fn new(store: Arc<dyn AuditLog>, signer: Option<Arc<SigningKey>>, every: u64) -> Self {
        Checkpointer {
            store,
            signer,
            every: i64::try_from(every.max(1)).unwrap_or(i64::MAX),
            last: AtomicI64::new(-1),
            head: Mutex::new((0, super::GENESIS)),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Events this instance committed past the last checkpoint it knows of (`None` before
    /// it knows one, or when it signs none).
    pub fn lag(&self) -> Option<i64> {
        let last = self.last.load(Ordering::Relaxed);
        (self.signer.is_some() && last >= 0).then(|| (lock(&self.head).0 - last).max(0))
    }

    /// The key that signs, if any.
    pub fn signer(&self) -> Option<&Arc<SigningKey>> {
        self.signer.as_ref()
    }

    /// Signs and stores a checkpoint at (`position`, `hash`) unless the store has one there
    /// (or, with `min_gap`, closer than that below it); returns it when stored.
    pub async fn checkpoint_at(
        &self,
        position: i64,
        hash: [u8; 32],
        min_gap: Option<i64>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let checkpoint = sign(signer, position, hash).map_err(|error| {
            tracing::error!(error = %super::describe(&error), "cannot sign an audit checkpoint");
            StoreError::Invariant("checkpoint signing failed")
        })?;
        let stored = self
            .store
            .add_audit_checkpoint(&checkpoint, min_gap)
            .await?;
        self.last.fetch_max(position, Ordering::Relaxed);
        Ok(stored.then_some(checkpoint))
    }

    /// A checkpoint at the current head, unless one is already there.
    pub async fn checkpoint_head(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.store.audit_head().await? {
            Some((position, hash)) => self.checkpoint_at(position, hash, None).await,
            None => Ok(None),
        }
    }

    /// Called by the writer after each commit: when the chain is `every` events past the last
    /// checkpoint this instance knows of, starts a background task that makes checkpoints
    /// until it has caught up with the newest head (so after a burst the chain is never
    /// `every` events past its last checkpoint for long).
    pub(crate) fn after_commit(self: &Arc<Self>, head: (i64, [u8; 32])) {
        if self.signer.is_none() {
            return;
        }
        {
            let mut newest = lock(&self.head);
            if head.0 > newest.0 {
                *newest = head;
            }
        }
        let last = self.last.load(Ordering::Relaxed);
        if last >= 0 && head.0 - last < self.every {
            return;
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if this.last.load(Ordering::Relaxed) < 0 {
                // First commit of this instance: learn where the newest checkpoint is.
                match this.store.latest_audit_checkpoint().await {
                    Ok(latest) => {
                        let known = latest.map_or(0, |checkpoint| checkpoint.position);
                        this.last.fetch_max(known, Ordering::Relaxed);
                    }
                    Err(error) => tracing::warn!(
                        error = %super::describe(&error),
                        "cannot read the latest checkpoint"
                    ),
                }
            }
            loop {
                let (position, hash) = *lock(&this.head);
                let last = this.last.load(Ordering::Relaxed).max(0);
                if position - last < this.every {
                    break;
                }
                match this.checkpoint_at(position, hash, Some(this.every)).await {
                    // Stored, or another instance's is close enough: either way caught up here.
                    Ok(_) => {
                        this.last.fetch_max(position, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::warn!(
                            error = %super::describe(&error),
                            position,
                            "audit checkpoint failed; will retry"
                        );
                        break;
                    }
                }
            }
            this.busy.store(false, Ordering::Release);
        });
    }

    /// On the timer: a checkpoint at the head if the chain grew since the newest one and that
    /// one is older than `interval`.
    async fn tick(&self, interval: Duration) -> Result<(), StoreError> {
        let Some((position, hash)) = self.store.audit_head().await? else {
            return Ok(());
        };
        let latest = self.store.latest_audit_checkpoint().await?;
        let due = match &latest {
            None => true,
            Some(checkpoint) => {
                self.last.fetch_max(checkpoint.position, Ordering::Relaxed);
                let age = Utc::now() - checkpoint.time;
                checkpoint.position < position
                    && age.to_std().is_ok_and(|age| age >= interval.mul_f64(0.9))
            }
        };
        if due {
            self.checkpoint_at(position, hash, None).await?;
        }
        Ok(())
    }
}

/// Locks `mutex`; a poisoned one still holds a consistent head (a single assignment).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ticks every `interval` until the auditor (`queue`) is gone.
pub(crate) async fn run_timer<T: Send + 'static>(
    queue: mpsc::WeakSender<T>,
    checkpointer: Arc<Checkpointer>,
    interval: Duration,
) {
    if checkpointer.signer.is_none() || interval.is_zero() {
        return;
    }
    let alive = || queue.upgrade().is_some();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if !alive() {
            return;
        }
        if let Err(error) = checkpointer.tick(interval).await {
            tracing::warn!(error = %super::describe(&error), "periodic audit checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn signed_checkpoints_open_with_the_public_key_only() {
        let key = SigningKey::generate().unwrap();
        let checkpoint = sign(&key, 42, [7u8; 32]).unwrap();
        let keys = VerifyingKeys::of(&key);
        let opened = keys.open(&checkpoint.jws).unwrap();
        assert_eq!(opened, checkpoint);
        keys.check(&checkpoint).unwrap();

        // Another key: unknown; a stored row that says otherwise: mismatch.
        let other = VerifyingKeys::of(&SigningKey::generate().unwrap());
        assert!(matches!(
            other.open(&checkpoint.jws),
            Err(CheckpointError::UnknownKey(_))
        ));
        let lying = Checkpoint {
            position: 43,
            ..checkpoint.clone()
        };
        assert_eq!(keys.check(&lying), Err(CheckpointError::Mismatch));
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let key = SigningKey::generate().unwrap();
        let checkpoint = sign(&key, 42, [7u8; 32]).unwrap();
        let mut parts: Vec<String> = checkpoint.jws.split('.').map(str::to_owned).collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("42", "41"));
        let forged = parts.join(".");
        assert_eq!(
            VerifyingKeys::of(&key).open(&forged),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn jwks_documents_give_their_p256_keys() {
        let key = SigningKey::generate().unwrap();
        let jwks = serde_json::json!({ "keys": [key.jwk, {"kty": "oct", "k": "AAAA"}] });
        let keys = VerifyingKeys::from_jwks(&jwks.to_string()).unwrap();
        let checkpoint = sign(&key, 1, [1u8; 32]).unwrap();
        assert_eq!(keys.open(&checkpoint.jws).unwrap().position, 1);
        let private = serde_json::json!({ "keys": [{"kty": "EC", "crv": "P-256", "d": "x"}] });
        assert!(VerifyingKeys::from_jwks(&private.to_string()).is_err());
    }
}
