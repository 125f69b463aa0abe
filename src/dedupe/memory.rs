//! The in-process store: a map behind a mutex, bounded in answers and in bytes.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::clock;
use super::store::{Claim, ClaimId, Store, StoreFuture, StoredResponse, Waited};

/// How many answers a [`MemoryStore`] keeps by default.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// How many bytes of answers a [`MemoryStore`] keeps by default (16 MiB).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Answers kept in this process: enough for one instance, or for replicas behind a load
/// balancer that sends each event's retries to the same one (they usually do not: use
/// `RedisStore` then).
///
/// Bounded twice: at most [`with_max_entries`](Self::with_max_entries) answers and
/// [`with_max_bytes`](Self::with_max_bytes) bytes of them (bodies, header names and values,
/// keys); beyond either, the oldest answers go first. Expired answers are dropped as new
/// ones arrive. Claims of deliveries in flight are not counted: there are as many as
/// requests being handled, and each leaves when its request ends.
///
/// Clones share the same answers.
///
/// ```
/// use tower_twilio_signature::dedupe::{DedupeLayer, MemoryStore};
///
/// let store = MemoryStore::new().with_max_entries(1_000).with_max_bytes(4 << 20);
/// let layer = DedupeLayer::new().with_store(store.clone());
/// assert_eq!(store.len(), 0);
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct MemoryStore {
    max_entries: usize,
    max_bytes: usize,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    slots: HashMap<Arc<str>, Slot>,
    /// Stored answers, oldest first, with the generation that tells a live one from a
    /// key stored again since.
    order: VecDeque<(Arc<str>, u64)>,
    answers: usize,
    bytes: usize,
    generation: u64,
}

enum Slot {
    Claimed {
        claim: ClaimId,
        expires: Instant,
        /// Dropped when the claim ends, which wakes every waiter.
        _ended: watch::Sender<()>,
        ended: watch::Receiver<()>,
    },
    Answered {
        response: StoredResponse,
        expires: Instant,
        size: usize,
        generation: u64,
    },
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with the default bounds ([`DEFAULT_MAX_ENTRIES`],
    /// [`DEFAULT_MAX_BYTES`]).
    pub fn new() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            state: Arc::default(),
        }
    }

    /// Keeps at most `max` answers.
    pub const fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// Keeps at most `max` bytes of answers. An answer larger than that alone is not kept.
    pub const fn with_max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// How many answers it holds (expired ones not yet dropped included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().answers
    }

    /// Whether it holds no answer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many bytes of answers it holds.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing below can leave the state half-changed when it panics.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Removes `key`, keeping the counts right.
    fn remove(&mut self, key: &str) {
        if let Some(Slot::Answered { size, .. }) = self.slots.remove(key) {
            self.answers -= 1;
            self.bytes -= size;
        }
    }

    /// The slot of `key`, after dropping it if it expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&Slot> {
        let expired = match self.slots.get(key)? {
            Slot::Claimed { expires, .. } | Slot::Answered { expires, .. } => *expires <= now,
        };
        if expired {
            self.remove(key);
            return None;
        }
        self.slots.get(key)
    }

    /// Drops answers, oldest first, until one of `size` bytes fits, or expired ones at
    /// the front.
    fn make_room(&mut self, size: usize, max_entries: usize, max_bytes: usize, now: Instant) {
        while let Some((key, generation)) = self.order.front().cloned() {
            let current = match self.slots.get(&key) {
                Some(Slot::Answered {
                    generation: g,
                    expires,
                    ..
                }) if *g == generation => Some(*expires),
                _ => None,
            };
            let Some(expires) = current else {
                // Removed or replaced since: a stale entry of the queue.
                self.order.pop_front();
                continue;
            };
            let full = self.answers + 1 > max_entries || self.bytes + size > max_bytes;
            if !full && expires > now {
                break;
            }
            self.order.pop_front();
            self.remove(&key);
        }
    }
}

impl Store for MemoryStore {
    fn claim(&self, key: &str, claim: ClaimId, claim_ttl: Duration) -> StoreFuture<Claim> {
        let now = Instant::now();
        let mut state = self.lock();
        let found = match state.live(key, now) {
            Some(Slot::Claimed { .. }) => Claim::Pending,
            Some(Slot::Answered { response, .. }) => Claim::Answered(response.clone()),
            None => {
                let (tx, rx) = watch::channel(());
                state.slots.insert(
                    Arc::from(key),
                    Slot::Claimed {
                        claim,
                        expires: clock::after(now, claim_ttl),
                        _ended: tx,
                        ended: rx,
                    },
                );
                Claim::Won
            }
        };
        Box::pin(ready(Ok(found)))
    }

    fn wait(&self, key: &str, max: Duration) -> StoreFuture<Waited> {
        let store = self.clone();
        let key: Arc<str> = Arc::from(key);
        Box::pin(async move {
            let deadline = clock::after(Instant::now(), max);
            loop {
                let (mut ended, claim_expires) = {
                    let mut state = store.lock();
                    match state.live(&key, Instant::now()) {
                        None => return Ok(Waited::Released),
                        Some(Slot::Answered { response, .. }) => {
                            return Ok(Waited::Answered(response.clone()))
                        }
                        Some(Slot::Claimed { ended, expires, .. }) => (ended.clone(), *expires),
                    }
                };
                // Wakes when the claim's sender is dropped (completed, released or
                // replaced), or when the claim expires, whichever is first.
                let until = deadline.min(claim_expires);
                match tokio::time::timeout_at(until, ended.changed()).await {
                    Ok(_) => {}
                    Err(_) if until < deadline => {}
                    Err(_) => return Ok(Waited::Pending),
                }
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
        let now = Instant::now();
        let mut state = self.lock();
        let ours = matches!(
            state.live(key, now),
            Some(Slot::Claimed { claim: c, .. }) if *c == claim
        ) || !state.slots.contains_key(key);
        if ours {
            state.remove(key);
            let size = response.size() + key.len();
            if size <= self.max_bytes && self.max_entries > 0 {
                state.make_room(size, self.max_entries, self.max_bytes, now);
                state.generation += 1;
                let generation = state.generation;
                let key: Arc<str> = Arc::from(key);
                state.order.push_back((Arc::clone(&key), generation));
                state.slots.insert(
                    key,
                    Slot::Answered {
                        response,
                        expires: clock::after(now, ttl),
                        size,
                        generation,
                    },
                );
                state.answers += 1;
                state.bytes += size;
            }
        }
        Box::pin(ready(Ok(())))
    }

    fn release(&self, key: &str, claim: ClaimId) -> StoreFuture<()> {
        let mut state = self.lock();
        if matches!(state.slots.get(key), Some(Slot::Claimed { claim: c, .. }) if *c == claim) {
            state.slots.remove(key);
        }
        Box::pin(ready(Ok(())))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("answers", &state.answers)
            .field("bytes", &state.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    fn answer(body: &'static str) -> StoredResponse {
        StoredResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(body.as_bytes()),
        )
    }

    async fn claim(store: &MemoryStore, key: &str) -> (ClaimId, Claim) {
        let id = ClaimId::random();
        (
            id,
            store.claim(key, id, Duration::from_secs(60)).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn one_claim_wins_and_its_answer_is_replayed() {
        let store = MemoryStore::new();
        let (id, won) = claim(&store, "a").await;
        assert!(matches!(won, Claim::Won));
        assert!(matches!(claim(&store, "a").await.1, Claim::Pending));
        store
            .complete("a", id, answer("hi"), Duration::from_secs(60))
            .await
            .unwrap();
        match claim(&store, "a").await.1 {
            Claim::Answered(r) => assert_eq!(r.body(), "hi"),
            other => panic!("expected the answer, got {other:?}"),
        }
        assert_eq!((store.len(), store.bytes()), (1, 3));
    }

    #[tokio::test]
    async fn a_stale_claim_neither_completes_nor_releases_a_newer_one() {
        let store = MemoryStore::new();
        let old = ClaimId::random();
        assert!(matches!(
            store.claim("a", old, Duration::ZERO).await.unwrap(),
            Claim::Won
        ));
        let (new, won) = claim(&store, "a").await;
        assert!(matches!(won, Claim::Won), "an expired claim is free");
        store.release("a", old).await.unwrap();
        store
            .complete("a", old, answer("old"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(claim(&store, "a").await.1, Claim::Pending));
        store.release("a", new).await.unwrap();
        assert!(matches!(claim(&store, "a").await.1, Claim::Won));
    }

    #[tokio::test]
    async fn bounds_drop_the_oldest_answers() {
        let store = MemoryStore::new().with_max_entries(2).with_max_bytes(1_000);
        for key in ["a", "b", "c"] {
            let (id, _) = claim(&store, key).await;
            store
                .complete(key, id, answer("12345"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 2);
        assert!(matches!(claim(&store, "a").await.1, Claim::Won));
        assert!(matches!(claim(&store, "c").await.1, Claim::Answered(_)));

        let bytes = MemoryStore::new().with_max_bytes(13);
        for key in ["a", "b"] {
            let (id, _) = claim(&bytes, key).await;
            bytes
                .complete(key, id, answer("12345"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        // Each answer is 6 bytes with its key: the second pushes the first out.
        assert_eq!((bytes.len(), bytes.bytes()), (2, 12));
        let (id, _) = claim(&bytes, "c").await;
        bytes
            .complete("c", id, answer("12345"), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!((bytes.len(), bytes.bytes()), (2, 12));
        assert!(matches!(claim(&bytes, "a").await.1, Claim::Won));
        // Larger than the whole budget: not kept, and the key is free again.
        let (id, _) = claim(&bytes, "big").await;
        bytes
            .complete(
                "big",
                id,
                answer("0123456789abcdef"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(matches!(claim(&bytes, "big").await.1, Claim::Won));
    }

    #[tokio::test]
    async fn the_longest_durations_do_not_overflow() {
        let store = MemoryStore::new();
        let id = ClaimId::random();
        assert!(matches!(
            store.claim("a", id, Duration::MAX).await.unwrap(),
            Claim::Won
        ));
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait("a", Duration::MAX).await }
        });
        tokio::task::yield_now().await;
        store
            .complete("a", id, answer("kept"), Duration::MAX)
            .await
            .unwrap();
        assert!(matches!(
            waiter.await.unwrap().unwrap(),
            Waited::Answered(r) if r.body() == "kept"
        ));
        assert!(matches!(claim(&store, "a").await.1, Claim::Answered(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_and_waiters_wake() {
        let store = MemoryStore::new();
        let (id, _) = claim(&store, "a").await;
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait("a", Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        store
            .complete("a", id, answer("done"), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(matches!(
            waiter.await.unwrap().unwrap(),
            Waited::Answered(r) if r.body() == "done"
        ));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(matches!(claim(&store, "a").await.1, Claim::Won));
        let started = Instant::now();
        assert!(matches!(
            store.wait("a", Duration::from_secs(2)).await.unwrap(),
            Waited::Pending
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
