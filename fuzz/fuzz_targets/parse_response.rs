//! The ACS pipeline on arbitrary bytes: parse, verify (the example IdP's certificate), accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::saml::replay::NoReplayCheck;
use ssogate::saml::response::{ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions};
use ssogate::saml::xmldsig::{AlgorithmPolicy, IdpTrust, TrustedCertificate};
use ssogate::saml::UnixTime;

fuzz_target!(|data: &[u8]| {
    let cert = TrustedCertificate::from_any(include_bytes!("../../fixtures/examples/idp-cert.pem")).expect("shipped certificate");
    let trust = IdpTrust::Certificates(vec![cert]);
    let opts = VerifyOptions { algorithms: AlgorithmPolicy { allow_sha1: true }, ..Default::default() };
    let ctx = ExpectedContext {
        sp_entity_id: "https://cc.example.com/agentportal",
        acs_url: "https://cc.example.com/agentportal/saml/acs",
        idp_entity_id: "http://adfs.example.com/adfs/services/trust",
        solicitation: Solicitation::Unsolicited,
        clock_skew_secs: 180,
        username: UsernameSource::NameId,
    };
    let xml = match ssogate::saml::bindings::decode_post(data, &opts.limits) {
        Ok(x) if !data.starts_with(b"<") => x,
        _ => data.to_vec(),
    };
    if let Ok(u) = UnverifiedResponse::parse(&xml, &opts.limits) {
        if let Ok(v) = u.verify(&trust, &opts) {
            let _ = v.accept(&ctx, UnixTime::from_secs(1_800_000_000)).and_then(|u| u.redeem(&NoReplayCheck, UnixTime::from_secs(1_800_000_000)));
        }
    }
});
