//! Twilio's retries answered once: with the `dedupe` feature, a layer inside the signature
//! layer replays the first answer to each later delivery of an event. `DEDUPE_REDIS_URL`
//! (feature `redis`) keeps the answers in Redis, shared by replicas; otherwise they are
//! kept in memory.

/// The layer, and a line that says where it keeps answers.
#[cfg(feature = "dedupe")]
pub(crate) fn layer() -> Result<(tower_twilio_signature::dedupe::DedupeLayer, String), String> {
    use tower_twilio_signature::dedupe::DedupeLayer;
    match std::env::var("DEDUPE_REDIS_URL") {
        Ok(url) if !url.is_empty() => redis(&url),
        _ => Ok((
            DedupeLayer::new(),
            "retries answered once, from memory".to_owned(),
        )),
    }
}

#[cfg(feature = "redis")]
fn redis(url: &str) -> Result<(tower_twilio_signature::dedupe::DedupeLayer, String), String> {
    use tower_twilio_signature::dedupe::{DedupeLayer, RedisStore};
    let store = RedisStore::open(url).map_err(|err| format!("DEDUPE_REDIS_URL: {err}"))?;
    Ok((
        DedupeLayer::new().with_store(store),
        "retries answered once, from Redis".to_owned(),
    ))
}

#[cfg(all(feature = "dedupe", not(feature = "redis")))]
fn redis(_: &str) -> Result<(tower_twilio_signature::dedupe::DedupeLayer, String), String> {
    Err("DEDUPE_REDIS_URL needs the redis feature: --features redis".to_owned())
}

/// Without the `dedupe` feature: nothing between the signature layer and the callbacks.
#[cfg(not(feature = "dedupe"))]
pub(crate) fn layer() -> Result<(tower::layer::util::Identity, String), String> {
    match std::env::var("DEDUPE_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            Err("DEDUPE_REDIS_URL needs the redis feature: --features redis".to_owned())
        }
        _ => Ok((
            tower::layer::util::Identity::new(),
            "retries not deduplicated".to_owned(),
        )),
    }
}
