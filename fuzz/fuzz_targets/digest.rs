#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tower_twilio_signature_fuzz::targets::digest(data);
});
