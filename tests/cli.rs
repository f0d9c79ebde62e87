//! The command line: exit codes (0 accepted, 1 refused, 2 usage or I/O), one JSON object on
//! stdout, and the README's first command.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn ssogate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs")
}

fn json(o: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.trim().lines().count(),
        1,
        "one JSON object on one line: {text}"
    );
    serde_json::from_str(text.trim()).expect("JSON")
}

const EXAMPLE: &[&str] = &[
    "saml",
    "verify",
    "--response",
    "fixtures/examples/adfs-response.b64",
    "--idp-cert",
    "fixtures/examples/idp-cert.pem",
    "--sp-entity-id",
    "https://cc.example.com/agentportal",
    "--acs-url",
    "https://cc.example.com/agentportal/saml/acs",
    "--idp-entity-id",
    "http://adfs.example.com/adfs/services/trust",
    "--username-attribute",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname",
];

#[test]
fn readme_first_command_accepts_the_example() {
    // The README's command, as written there.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    assert!(
        readme.contains(&format!("cargo run --release -- {}", EXAMPLE.join(" "))),
        "the README leads with this command"
    );
    let o = ssogate(EXAMPLE);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["valid"], true);
    assert_eq!(v["username"], "EXAMPLE\\agent1");
    assert_eq!(v["name_id"], "agent1@example.com");
    assert_eq!(
        v["name_id_format"],
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    );
    assert_eq!(v["issuer"], "http://adfs.example.com/adfs/services/trust");
    assert_eq!(v["not_on_or_after"], "2099-12-31T23:59:59Z");
    assert_eq!(
        v["attributes"]["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"][0],
        "agent1@example.com"
    );
    assert!(v["session_index"].is_string());
}

#[test]
fn refusals_exit_1_with_reason_and_detail() {
    // The response is unsolicited; claiming a request makes it a refusal with the exact reason.
    let mut args = EXAMPLE.to_vec();
    args.extend(["--request-id", "_ours"]);
    let o = ssogate(&args);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["valid"], false);
    assert_eq!(v["reason"], "in_response_to_missing");
    assert!(v["detail"].as_str().expect("detail").contains("_ours"));

    // Wrong certificate: the detail names the expected and the carried certificate.
    let dir = common::scratch_dir("cli_wrong_cert");
    let other = dir.join("other.pem");
    std::fs::write(&other, &common::generate::idp2().cert_pem).expect("write");
    let mut args = EXAMPLE.to_vec();
    args[5] = other.to_str().expect("utf8");
    let o = ssogate(&args);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["reason"], "signature_invalid");
    let detail = v["detail"].as_str().expect("detail");
    assert!(
        detail.contains("SHA-256") && detail.contains("ADFS Signing - adfs.example.com"),
        "{detail}"
    );

    // Expired at a later clock, with the skew in the message.
    let mut args = EXAMPLE.to_vec();
    args.extend(["--now", "2100-01-01T00:03:00Z"]); // NotOnOrAfter 2099-12-31T23:59:59 + 180 s skew
    let v = json(&ssogate(&args));
    assert_eq!(v["reason"], "expired");

    // Fingerprint trust: right and wrong.
    let fp_args = |fp: &str| {
        let mut a: Vec<&str> = EXAMPLE
            .iter()
            .copied()
            .filter(|s| !s.contains("idp-cert") && !s.contains(".pem"))
            .collect();
        a.extend(["--fingerprint", fp]);
        a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let cert = ssogate::saml::xmldsig::TrustedCertificate::from_any(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/examples/idp-cert.pem"),
        )
        .expect("pem"),
    )
    .expect("cert");
    let good = format!("sha256:{}", cert.sha256_hex().to_lowercase());
    let a = fp_args(&good);
    let o = ssogate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let a = fp_args("sha256:0000000000000000000000000000000000000000000000000000000000000000");
    let o = ssogate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(json(&o)["reason"], "fingerprint_mismatch");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let mut missing = EXAMPLE.to_vec();
    missing[3] = "fixtures/examples/no-such-file.xml";
    let o = ssogate(&missing);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-file.xml"));
    assert_eq!(ssogate(&["saml", "verify"]).status.code(), Some(2));
    let no_trust: Vec<&str> = EXAMPLE
        .iter()
        .copied()
        .filter(|s| !s.contains("idp-cert"))
        .collect();
    assert_eq!(ssogate(&no_trust).status.code(), Some(2));
    let mut bad_now = EXAMPLE.to_vec();
    bad_now.extend(["--now", "yesterday"]);
    assert_eq!(ssogate(&bad_now).status.code(), Some(2));
    let mut bad_fp: Vec<&str> = EXAMPLE
        .iter()
        .copied()
        .filter(|s| !s.contains("idp-cert") && !s.contains(".pem"))
        .collect();
    bad_fp.extend(["--fingerprint", "md5:00"]);
    assert_eq!(ssogate(&bad_fp).status.code(), Some(2));
}

#[test]
fn metadata_and_authn_request_commands() {
    let o = ssogate(&[
        "saml",
        "metadata",
        "--entity-id",
        "https://cc.example.com/agentportal",
        "--acs-url",
        "https://cc.example.com/agentportal/saml/acs",
        "--slo-url",
        "https://cc.example.com/agentportal/saml/slo",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let md = String::from_utf8(o.stdout).expect("utf8");
    assert!(md.contains("entityID=\"https://cc.example.com/agentportal\""));
    assert_eq!(
        ssogate(&[
            "saml",
            "metadata",
            "--entity-id",
            "x",
            "--acs-url",
            "y",
            "--sign-requests"
        ])
        .status
        .code(),
        Some(2)
    );

    let o = ssogate(&[
        "saml",
        "authn-request",
        "--idp-metadata",
        "fixtures/idp-metadata/okta.xml",
        "--sp-entity-id",
        "https://cc.example.com/agentportal",
        "--acs-url",
        "https://cc.example.com/agentportal/saml/acs",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    let url = v["url"].as_str().expect("url");
    assert!(url.starts_with("https://contoso.okta.com/app/contoso_agentportal_1/exk1fcia6d6EMsf331d8/sso/saml?SAMLRequest="), "{url}");
    assert!(v["id"].as_str().expect("id").starts_with('_'));
}

#[test]
fn bench_prints_the_rate_last() {
    let mut args = EXAMPLE.to_vec();
    args[1] = "bench";
    args.extend(["--seconds", "1"]);
    let o = ssogate(&args);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).expect("utf8");
    let last = out.trim().lines().last().expect("a line");
    let rate: f64 = last
        .strip_prefix("verifications_per_second: ")
        .expect("last line")
        .parse()
        .expect("number");
    assert!(rate > 0.0);
}
