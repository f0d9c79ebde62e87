//! HTTP-Redirect decoding (query split, base64, bounded inflate) and query-signature checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::saml::xml::Limits;
use ssogate::saml::xmldsig::{AlgorithmPolicy, IdpTrust, TrustedCertificate};

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    let limits = Limits { max_bytes: 64 * 1024, ..Limits::default() };
    if let Ok(m) = ssogate::saml::bindings::decode_redirect(&q, &limits, AlgorithmPolicy::default()) {
        let cert = TrustedCertificate::from_any(include_bytes!("../../fixtures/examples/idp-cert.pem")).expect("shipped certificate");
        let _ = m.verify_signature(&IdpTrust::Certificates(vec![cert]));
    }
});
