//! A store in Redis, shared by every replica that points at it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, RedisResult, Script};
use tokio::time::Instant;

use super::clock::{self, LONGEST};
use super::store::{Claim, ClaimId, Store, StoreError, StoreFuture, StoredResponse, Waited};

/// The longest a Redis call may take by default before the store reports it failed.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a waiting delivery reads the key by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// What every key starts with by default.
pub const DEFAULT_KEY_PREFIX: &str = "twilio-webhook:";

/// Marks a claim in a value; followed by the claim id in hex.
const CLAIMED: u8 = b'C';
/// Marks a stored answer in a value; followed by [`StoredResponse::to_bytes`].
const ANSWERED: u8 = b'R';

/// Stores the answer if the key still holds this claim, or nothing (the claim expired
/// and no one took the key since).
const COMPLETE: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] or held == false then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Deletes the key if it still holds this claim.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Claims and answers in Redis, so that every replica of a service answers an event
/// once (feature `redis`).
///
/// - A claim is `SET key "C<claim id>" NX PX <claim TTL>`: atomic, one delivery wins.
/// - The answer replaces the claim, for the answer's TTL, through a script that first
///   checks the key still holds this claim; releasing deletes the key the same way.
/// - A delivery that finds a claim reads the key every
///   [`with_poll_interval`](Self::with_poll_interval) until it holds an answer, is gone,
///   or the wait runs out.
/// - Every call is bounded by [`with_timeout`](Self::with_timeout): when Redis is down or
///   slow, the call fails within that time and the layer applies its
///   [`StoreFailure`](super::StoreFailure) (pass through by default). No request hangs on
///   Redis.
///
/// ```no_run
/// use tower_twilio_signature::dedupe::{DedupeLayer, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Connects on first use: the service starts even while Redis is down.
/// let store = RedisStore::open("redis://127.0.0.1:6379/")?.with_key_prefix("sms-app:");
/// let layer = DedupeLayer::new().with_store(store);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    poll_interval: Duration,
    scripts: Arc<Scripts>,
}

struct Scripts {
    complete: Script,
    release: Script,
}

impl RedisStore {
    /// A store over a connection you configured.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_KEY_PREFIX),
            timeout: DEFAULT_REDIS_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            scripts: Arc::new(Scripts {
                complete: Script::new(COMPLETE),
                release: Script::new(RELEASE),
            }),
        }
    }

    /// A store over `url` (`redis://host:port/db`), connected on first use and
    /// reconnected after failures, each attempt bounded by [`DEFAULT_REDIS_TIMEOUT`].
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// A URL that does not parse.
    pub fn open(url: &str) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_REDIS_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        Ok(Self::new(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// What every key starts with ([`DEFAULT_KEY_PREFIX`]); give services that share a
    /// Redis database their own.
    pub fn with_key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix);
        self
    }

    /// The longest one Redis call may take ([`DEFAULT_REDIS_TIMEOUT`]). The connection
    /// that [`open`](Self::open) makes also gives up on a reply or a connection attempt
    /// after [`DEFAULT_REDIS_TIMEOUT`]: for a longer limit, configure a
    /// `ConnectionManager` yourself and pass it to [`new`](Self::new).
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often a waiting delivery reads the key ([`DEFAULT_POLL_INTERVAL`]).
    pub const fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn claim_value(claim: ClaimId) -> String {
    format!("{}{claim}", char::from(CLAIMED))
}

/// Milliseconds for `PX`: at least 1, as Redis refuses 0, and at most [`LONGEST`], as it
/// refuses a count that overflows once added to its clock.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.min(LONGEST).as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Runs one Redis call within `limit`.
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(StoreError::new),
        Err(_) => Err(StoreError::timeout(limit)),
    }
}

/// What a key holds.
enum Held {
    Claimed,
    Answered(StoredResponse),
}

fn decode(value: &[u8]) -> Result<Held, StoreError> {
    match value.split_first() {
        Some((&CLAIMED, _)) => Ok(Held::Claimed),
        Some((&ANSWERED, answer)) => StoredResponse::from_bytes(answer).map(Held::Answered),
        _ => Err(StoreError::new("unreadable value under a dedupe key")),
    }
}

impl Store for RedisStore {
    fn claim(&self, key: &str, claim: ClaimId, claim_ttl: Duration) -> StoreFuture<Claim> {
        let key = self.key(key);
        let mut connection = self.connection.clone();
        let limit = self.timeout;
        Box::pin(async move {
            let value = claim_value(claim);
            // A claim or answer that expires between the SET and the GET leaves the key
            // free: try again, a few times.
            for _ in 0..3 {
                let set: Option<String> = bounded(
                    limit,
                    ::redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(claim_ttl))
                        .query_async(&mut connection),
                )
                .await?;
                if set.is_some() {
                    return Ok(Claim::Won);
                }
                let held: Option<Vec<u8>> = bounded(
                    limit,
                    ::redis::cmd("GET").arg(&key).query_async(&mut connection),
                )
                .await?;
                match held.as_deref().map(decode).transpose()? {
                    None => continue,
                    Some(Held::Claimed) => return Ok(Claim::Pending),
                    Some(Held::Answered(answer)) => return Ok(Claim::Answered(answer)),
                }
            }
            Ok(Claim::Pending)
        })
    }

    fn wait(&self, key: &str, max: Duration) -> StoreFuture<Waited> {
        let key = self.key(key);
        let mut connection = self.connection.clone();
        let (limit, interval) = (self.timeout, self.poll_interval);
        Box::pin(async move {
            let deadline = clock::after(Instant::now(), max);
            loop {
                let held: Option<Vec<u8>> = bounded(
                    limit,
                    ::redis::cmd("GET").arg(&key).query_async(&mut connection),
                )
                .await?;
                match held.as_deref().map(decode).transpose()? {
                    None => return Ok(Waited::Released),
                    Some(Held::Answered(answer)) => return Ok(Waited::Answered(answer)),
                    Some(Held::Claimed) => {}
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Waited::Pending);
                }
                tokio::time::sleep_until(deadline.min(clock::after(now, interval))).await;
            }
        })
    }

    fn complete(
        &self,
        key: &str,
        claim: ClaimId,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<()> {
        let key = self.key(key);
        let mut connection = self.connection.clone();
        let limit = self.timeout;
        let scripts = Arc::clone(&self.scripts);
        Box::pin(async move {
            let encoded = response.to_bytes();
            let mut value = Vec::with_capacity(1 + encoded.len());
            value.push(ANSWERED);
            value.extend_from_slice(&encoded);
            let _stored: i64 = bounded(
                limit,
                scripts
                    .complete
                    .key(&key)
                    .arg(claim_value(claim))
                    .arg(value)
                    .arg(millis(ttl))
                    .invoke_async(&mut connection),
            )
            .await?;
            Ok(())
        })
    }

    fn release(&self, key: &str, claim: ClaimId) -> StoreFuture<()> {
        let key = self.key(key);
        let mut connection = self.connection.clone();
        let limit = self.timeout;
        let scripts = Arc::clone(&self.scripts);
        Box::pin(async move {
            let _released: i64 = bounded(
                limit,
                scripts
                    .release
                    .key(&key)
                    .arg(claim_value(claim))
                    .invoke_async(&mut connection),
            )
            .await?;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisStore {
    /// Leaves the connection out: its address may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}
