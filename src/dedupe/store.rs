//! What the layer asks of a store, and the answers it keeps there.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// The future a [`Store`] method returns: boxed, `Send` and `'static`, so the trait stays
/// object safe and a store can be shared as `Arc<dyn Store>`.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Where the answers to webhooks are kept, keyed by the webhook's idempotency token, the
/// URL it was signed for and its signature.
///
/// A store holds, for each key, either nothing, a *claim* (a first delivery is being handled:
/// it expires after the claim's TTL, so a replica that dies does not block the event for
/// ever), or a stored answer (until its TTL). [`MemoryStore`](super::MemoryStore) keeps them
/// in the process; `RedisStore` (feature `redis`) shares them between replicas.
///
/// Every method returns a boxed future that owns what it needs (`'static`). A store should
/// bound the time of each call itself: the layer waits for it while a request waits for
/// the layer. [`release`](Self::release) may be called from a destructor, when a request is
/// dropped while it holds a claim: its future is then spawned on the current Tokio runtime
/// (and dropped if there is none), so a store that can do that work without awaiting
/// should do it before returning.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_twilio_signature::dedupe::{Claim, ClaimId, MemoryStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_twilio_signature::dedupe::StoreError> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let first = ClaimId::random();
/// assert!(matches!(store.claim("token url", first, Duration::from_secs(60)).await?, Claim::Won));
/// let second = ClaimId::random();
/// assert!(matches!(store.claim("token url", second, Duration::from_secs(60)).await?, Claim::Pending));
/// # Ok(()) }
/// ```
pub trait Store: Send + Sync + 'static {
    /// Claims `key` for `claim` for at most `claim_ttl`, when nothing holds it; otherwise
    /// says what does. Atomic: of many concurrent claims of one key, one wins.
    fn claim(&self, key: &str, claim: ClaimId, claim_ttl: Duration) -> StoreFuture<Claim>;

    /// Waits, for at most `max`, until `key` is no longer claimed, then says what it holds.
    fn wait(&self, key: &str, max: Duration) -> StoreFuture<Waited>;

    /// Replaces `claim` on `key` with `response`, kept for `ttl`. Stores nothing if another
    /// claim or answer has taken the key meanwhile.
    fn complete(
        &self,
        key: &str,
        claim: ClaimId,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<()>;

    /// Drops `claim` on `key` (if it still holds it) without storing an answer, so the next
    /// delivery runs the handler.
    fn release(&self, key: &str, claim: ClaimId) -> StoreFuture<()>;
}

/// A shared store is a store: `Arc<MemoryStore>`, `Arc<dyn Store>`.
impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    fn claim(&self, key: &str, claim: ClaimId, claim_ttl: Duration) -> StoreFuture<Claim> {
        (**self).claim(key, claim, claim_ttl)
    }

    fn wait(&self, key: &str, max: Duration) -> StoreFuture<Waited> {
        (**self).wait(key, max)
    }

    fn complete(
        &self,
        key: &str,
        claim: ClaimId,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<()> {
        (**self).complete(key, claim, response, ttl)
    }

    fn release(&self, key: &str, claim: ClaimId) -> StoreFuture<()> {
        (**self).release(key, claim)
    }
}

/// What [`Store::claim`] found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The key was free: the caller holds it now and runs the handler.
    Won,
    /// Another delivery holds the key and is running.
    Pending,
    /// The key holds an answer: replay it.
    Answered(StoredResponse),
}

/// What [`Store::wait`] found.
#[derive(Debug, Clone)]
pub enum Waited {
    /// The running delivery stored its answer.
    Answered(StoredResponse),
    /// Still claimed when the wait ran out.
    Pending,
    /// Nothing there any more: the running delivery released its claim (it failed), or
    /// the claim expired.
    Released,
}

/// The identity of one claim, so a delivery only completes or releases the claim it
/// made, never one another replica made after its own expired.
///
/// ```
/// use tower_twilio_signature::dedupe::ClaimId;
///
/// let a = ClaimId::random();
/// assert_ne!(a, ClaimId::random());
/// assert_eq!(a, ClaimId::from_u64(a.get()));
/// assert_eq!(a.to_string().len(), 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimId(u64);

impl ClaimId {
    /// A new id, unique across processes in practice: a counter, the process id and the
    /// time, hashed with a randomly keyed hasher.
    #[must_use]
    pub fn random() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(since.as_nanos());
        }
        Self(hasher.finish())
    }

    /// An id from its number, as a store read it back.
    #[must_use]
    pub const fn from_u64(id: u64) -> Self {
        Self(id)
    }

    /// The id's number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClaimId {
    /// Sixteen lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A store that could not answer: unreachable, too slow, or holding something unreadable.
///
/// ```
/// use tower_twilio_signature::dedupe::StoreError;
///
/// let err = StoreError::new("connection refused");
/// assert_eq!(err.to_string(), "dedupe store: connection refused");
/// ```
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }

    /// A call that did not finish within `limit`.
    #[must_use]
    pub fn timeout(limit: Duration) -> Self {
        Self::new(format!("no answer within {limit:?}"))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dedupe store: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// An answer kept to be replayed: the status, the headers the layer keeps, and the body.
///
/// [`to_bytes`](Self::to_bytes) and [`from_bytes`](Self::from_bytes) give a compact
/// encoding for stores that hold bytes.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_twilio_signature::dedupe::StoredResponse;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "text/xml".parse().unwrap());
/// let stored = StoredResponse::new(StatusCode::OK, headers, "<Response/>".into());
/// let back = StoredResponse::from_bytes(&stored.to_bytes()).unwrap();
/// assert_eq!(back, stored);
/// assert_eq!(back.headers()["content-type"], "text/xml");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The first byte of an encoded [`StoredResponse`], so a newer layout can be told apart.
const ENCODING_VERSION: u8 = 1;

/// The most headers an encoded [`StoredResponse`] holds. The layer keeps a handful; the
/// bound keeps a corrupt count from asking `HeaderMap` for more room than it can give,
/// which panics.
const MAX_HEADERS: u16 = 1024;

impl StoredResponse {
    /// An answer to keep.
    #[must_use]
    pub const fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// The status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers kept.
    #[must_use]
    pub const fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    #[must_use]
    pub const fn body(&self) -> &Bytes {
        &self.body
    }

    /// The status, headers and body.
    #[must_use]
    pub fn into_parts(self) -> (StatusCode, HeaderMap, Bytes) {
        (self.status, self.headers, self.body)
    }

    /// About how many bytes it takes in memory: body, header names and values.
    #[must_use]
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum::<usize>()
    }

    /// Encodes it: a version byte, the status, the headers as length-prefixed names and
    /// values, then the body. At most 1,024 headers are encoded, the first in the map's
    /// order; the layer keeps far fewer.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(16 + self.size() + 6 * self.headers.len());
        out.put_u8(ENCODING_VERSION);
        out.put_u16(self.status.as_u16());
        let count = self.headers.len().min(usize::from(MAX_HEADERS));
        out.put_u16(u16::try_from(count).unwrap_or(MAX_HEADERS));
        for (name, value) in self.headers.iter().take(count) {
            let name = name.as_str().as_bytes();
            out.put_u16(u16::try_from(name.len()).unwrap_or(u16::MAX));
            out.put_slice(&name[..name.len().min(usize::from(u16::MAX))]);
            out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
            out.put_slice(value.as_bytes());
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Decodes what [`to_bytes`](Self::to_bytes) made.
    ///
    /// # Errors
    /// A truncated or malformed encoding, including one that declares more than 1,024
    /// headers, or another version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
            if input.len() < n {
                return Err(StoreError::new("stored answer truncated"));
            }
            let (head, rest) = input.split_at(n);
            *input = rest;
            Ok(head)
        }
        let mut input = bytes;
        if take(&mut input, 1)?[0] != ENCODING_VERSION {
            return Err(StoreError::new("stored answer of an unknown version"));
        }
        let status = StatusCode::from_u16(take(&mut input, 2)?.get_u16())
            .map_err(|_| StoreError::new("stored answer with an invalid status"))?;
        let count = take(&mut input, 2)?.get_u16();
        if count > MAX_HEADERS {
            return Err(StoreError::new("stored answer with too many headers"));
        }
        let mut headers = HeaderMap::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = usize::from(take(&mut input, 2)?.get_u16());
            let name = HeaderName::from_bytes(take(&mut input, len)?)
                .map_err(|_| StoreError::new("stored answer with an invalid header name"))?;
            let len = usize::try_from(take(&mut input, 4)?.get_u32())
                .map_err(|_| StoreError::new("stored answer too large"))?;
            let value = HeaderValue::from_bytes(take(&mut input, len)?)
                .map_err(|_| StoreError::new("stored answer with an invalid header value"))?;
            headers.append(name, value);
        }
        Ok(Self::new(status, headers, Bytes::copy_from_slice(input)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_repeated_headers_and_binary_bodies() {
        let mut headers = HeaderMap::new();
        headers.append("cache-control", HeaderValue::from_static("no-store"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let stored = StoredResponse::new(
            StatusCode::ACCEPTED,
            headers,
            Bytes::from_static(&[0, 1, 2, 255]),
        );
        let bytes = stored.to_bytes();
        assert_eq!(StoredResponse::from_bytes(&bytes).unwrap(), stored);
        for cut in 0..bytes.len() - 4 {
            assert!(
                StoredResponse::from_bytes(&bytes[..cut]).is_err(),
                "a cut at {cut} must not decode"
            );
        }
    }

    #[test]
    fn a_corrupt_header_count_is_an_error_not_a_panic() {
        // Version, status 200, then a count no writer makes: HeaderMap::with_capacity
        // panics from 24,577 on, and append from 32,768 entries.
        for count in [1025u16, 24_577, 32_768, u16::MAX] {
            let mut bytes = vec![ENCODING_VERSION, 0, 200];
            bytes.extend_from_slice(&count.to_be_bytes());
            assert!(StoredResponse::from_bytes(&bytes).is_err(), "{count}");
            // With as many real headers after it, still refused.
            for i in 0..count {
                let name = format!("x-{i}");
                bytes.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
                bytes.extend_from_slice(name.as_bytes());
                bytes.extend_from_slice(&1u32.to_be_bytes());
                bytes.push(b'1');
            }
            assert!(StoredResponse::from_bytes(&bytes).is_err(), "{count}");
        }
    }

    #[test]
    fn the_most_headers_encoded_decode() {
        let mut headers = HeaderMap::new();
        for i in 0..=MAX_HEADERS {
            headers.append(
                HeaderName::try_from(format!("x-{i}")).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        let stored = StoredResponse::new(StatusCode::OK, headers, Bytes::new());
        let back = StoredResponse::from_bytes(&stored.to_bytes()).unwrap();
        assert_eq!(back.headers().len(), usize::from(MAX_HEADERS));
    }

    #[test]
    fn other_versions_are_refused() {
        let stored = StoredResponse::new(StatusCode::OK, HeaderMap::new(), Bytes::new());
        let mut bytes = stored.to_bytes().to_vec();
        bytes[0] = 2;
        assert!(StoredResponse::from_bytes(&bytes).is_err());
    }
}
