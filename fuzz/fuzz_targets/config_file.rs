#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_image_policy_fuzz::config_file(data));
