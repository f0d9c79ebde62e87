//! IdP metadata import on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ssogate::saml::metadata::parse_idp_metadata(data, None);
});
