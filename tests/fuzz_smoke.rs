//! A short pass of the fuzz targets (see `fuzz/`) on random inputs, so every test run
//! exercises them. `fuzz/run` runs them under libFuzzer for longer.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "fuzz_targets/mod.rs"]
mod targets;

use proptest::prelude::*;

/// Bytes drawn mostly from the characters that matter to forms, URLs and headers.
fn interesting() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"aAzZ09=&%+;,:/?#@[] \"'\\\t\x00\xc3\xa9\xff-_.~FfEe".to_vec();
    prop::collection::vec(
        prop_oneof![3 => prop::sample::select(alphabet), 1 => any::<u8>()],
        0..300,
    )
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![interesting(), prop::collection::vec(any::<u8>(), 0..600)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn form(data in bytes()) { targets::form(&data) }

    #[test]
    fn settings(data in bytes()) { targets::settings(&data) }

    #[test]
    fn forwarded(data in bytes()) { targets::forwarded(&data) }

    #[test]
    fn url(data in bytes()) { targets::url(&data) }

    #[test]
    fn request(data in bytes()) { targets::request(&data) }

    #[test]
    fn roundtrip(data in bytes()) { targets::roundtrip(&data) }

    #[test]
    fn reference(data in bytes()) { targets::reference(&data) }

    #[test]
    fn digest(data in bytes()) { targets::digest(&data) }
}

#[test]
fn seeds() {
    for form in [
        &b"Body=hi&From=%2B1"[..],
        b"a=%FF",
        b"a=\xef\xbf\xbd",
        b"&&&=&a",
        b"%",
        b"a=1&a=1&a=2",
    ] {
        targets::form(form);
    }
    for s in [
        "key=k1,algorithm=HMAC_SHA1",
        "key=k1,algorithm=HMAC_SHA256",
        "",
        ",,,",
        "key=,algorithm=",
    ] {
        targets::settings(s.as_bytes());
    }
    for u in [
        "https://hooks.example.com/sms",
        "HTTPS://h.test:443/x?y=1",
        "wss://h.test/media?a=1",
        "https://u:p@h.test/",
        "https://[::1]:8080/",
        "http://h.test",
        "https://h.test/x#frag",
    ] {
        targets::url(u.as_bytes());
    }
}
