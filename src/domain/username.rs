//! User names and the identities an IdP asserts (DESIGN §3.1 step 4, field notes 8 and 11).
//!
//! ADFS's `windowsaccountname` gives `DOMAIN\user`, `upn` gives `user@domain`. A name that names
//! a domain matches a user of a tenant only when that domain is one of the tenant's login domains
//! (UPN suffixes and NetBIOS names, compared without case): stripping a domain without checking
//! it would sign `EVIL\agent1` in as `agent1`. What is left is compared under RFC 8265's PRECIS
//! profiles: UsernameCaseMapped (the default, case-insensitive) or UsernameCasePreserved. Both
//! refuse compatibility characters (U+212A KELVIN SIGN, fullwidth forms are mapped, ligatures
//! refused), so no two spellings that look alike can name two users or one user twice.

use std::fmt;

use precis_core::profile::Profile as _;
use precis_profiles::{UsernameCaseMapped, UsernameCasePreserved};

use super::{Tenant, UsernameRule};
use crate::saml::echo::Echo;

/// A login name split into its user part and its domain (`DOMAIN\user` or `user@domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName<'a> {
    pub user: &'a str,
    pub domain: Option<&'a str>,
}

pub fn split(name: &str) -> LoginName<'_> {
    let name = name.trim();
    if let Some((domain, user)) = name.split_once('\\') {
        return LoginName {
            user,
            domain: Some(domain),
        };
    }
    if let Some((user, domain)) = name.rsplit_once('@') {
        return LoginName {
            user,
            domain: Some(domain),
        };
    }
    LoginName {
        user: name,
        domain: None,
    }
}

/// A domain as login domains are kept: ASCII lower case. `None` for anything that cannot be a
/// login domain (non-ASCII, empty), which then matches none.
pub fn domain_key(domain: &str) -> Option<String> {
    let d = domain.trim();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| d.to_ascii_lowercase())
}

/// Why a name cannot be compared with user names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    pub name: String,
    pub why: String,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" is not a valid user name: {}",
            Echo(&self.name),
            self.why
        )
    }
}

/// The PRECIS form of a user part: UsernameCaseMapped when the rule ignores case, else
/// UsernameCasePreserved (RFC 8265 §3.3, §3.4).
pub fn precis(user: &str, case_insensitive: bool) -> Result<String, InvalidName> {
    let r = if case_insensitive {
        UsernameCaseMapped::new().enforce(user)
    } else {
        UsernameCasePreserved::new().enforce(user)
    };
    r.map(|c| c.into_owned()).map_err(|e| InvalidName {
        name: user.to_string(),
        why: describe_precis_error(user, &e),
    })
}

fn describe_precis_error(user: &str, e: &precis_core::Error) -> String {
    match e {
        precis_core::Error::Invalid => "it is empty or not allowed by RFC 8265".into(),
        precis_core::Error::BadCodepoint(info) => {
            let what = char::from_u32(info.cp)
                .filter(|c| !c.is_control())
                .map(|c| format!(" '{c}'"))
                .unwrap_or_default();
            // Positions count code points; say where in characters the refused one is.
            let _ = user;
            format!(
                "U+{:04X}{what} at character {} is not allowed in user names (RFC 8265: no spaces, \
                 controls, symbols or compatibility characters such as U+212A KELVIN SIGN)",
                info.cp,
                info.position + 1
            )
        }
        other => format!("{other:?}"),
    }
}

/// The form a user name is stored and compared in under `rule`: the user part (without its
/// domain when the rule strips domains), in PRECIS form.
pub fn normalise(name: &str, rule: UsernameRule) -> Result<String, InvalidName> {
    let base = if rule.strip_domain {
        split(name).user
    } else {
        name.trim()
    };
    precis(base, rule.case_insensitive)
}

/// The form a Circuit user (an e-mail address or URI) is compared in: case-mapped PRECIS.
pub fn circuit_norm(circuit_user: &str) -> Result<String, InvalidName> {
    precis(circuit_user.trim(), true)
}

/// Why an asserted identity does not belong to the tenant it would sign in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The name cannot be a user name at all.
    Invalid(InvalidName),
    /// It names a domain that is none of the tenant's login domains (nor another tenant's of this IdP).
    ForeignDomain { domain: String },
    /// It names a domain of another tenant that uses the same IdP.
    OtherTenant { domain: String, other: String },
    /// The IdP serves several tenants and the name names no domain, so it belongs to none.
    NoDomain,
}

/// Checks the domain a claim names against `tenant` (and the other tenants that share its IdP),
/// and returns the name to look up among the tenant's users.
pub fn claim_identity(
    claim: &str,
    tenant: &Tenant,
    sharing: &[Tenant],
) -> Result<String, IdentityError> {
    let parts = split(claim);
    if tenant.username_rule.strip_domain {
        match parts.domain {
            Some(d) => {
                let key = domain_key(d);
                let mine = key
                    .as_ref()
                    .is_some_and(|k| tenant.login_domains.contains(k));
                if !mine {
                    let other = key.as_ref().and_then(|k| {
                        sharing
                            .iter()
                            .find(|t| t.id != tenant.id && t.login_domains.contains(k))
                    });
                    return Err(match other {
                        Some(o) => IdentityError::OtherTenant {
                            domain: d.to_string(),
                            other: o.name.clone(),
                        },
                        None => IdentityError::ForeignDomain {
                            domain: d.to_string(),
                        },
                    });
                }
            }
            None if sharing.iter().any(|t| t.id != tenant.id) => {
                return Err(IdentityError::NoDomain);
            }
            None => {}
        }
    }
    normalise(claim, tenant.username_rule).map_err(IdentityError::Invalid)
}

/// The tenant an unsolicited identity belongs to, among the tenants that use its IdP: the one
/// whose login domains hold the domain it names, or the only one when it names none.
pub fn tenant_of_claim<'t>(claim: &str, candidates: &'t [Tenant]) -> Option<&'t Tenant> {
    match split(claim).domain.and_then(domain_key) {
        Some(k) => candidates.iter().find(|t| t.login_domains.contains(&k)),
        None => match candidates {
            [only] => Some(only),
            _ => None,
        },
    }
}

/// Why a user name cannot be stored.
pub fn check_username(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the user name is empty".into());
    }
    if name.len() > 256 {
        return Err(format!(
            "the user name has {} bytes; at most 256",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("the user name contains a control character".into());
    }
    if name.trim() != name {
        return Err(format!(
            "the user name {name:?} starts or ends with white space"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn tenant(id: i64, name: &str, domains: &[&str]) -> Tenant {
        Tenant {
            id: TenantId(id),
            name: name.into(),
            login_domains: domains.iter().map(|d| d.to_string()).collect(),
            sso_enabled: true,
            idp_id: None,
            slo_enabled: false,
            idp_initiated: false,
            username_rule: UsernameRule::default(),
            display_name: String::new(),
            version: 1,
        }
    }

    #[test]
    fn splits_both_domain_forms() {
        assert_eq!(
            split("EXAMPLE\\agent1"),
            LoginName {
                user: "agent1",
                domain: Some("EXAMPLE")
            }
        );
        assert_eq!(
            split("agent1@example.org"),
            LoginName {
                user: "agent1",
                domain: Some("example.org")
            }
        );
        assert_eq!(
            split("agent1"),
            LoginName {
                user: "agent1",
                domain: None
            }
        );
    }

    #[test]
    fn normalises_by_rule() {
        let strip = UsernameRule {
            strip_domain: true,
            case_insensitive: true,
        };
        assert_eq!(normalise("EXAMPLE\\Agent1", strip).unwrap(), "agent1");
        assert_eq!(normalise("Agent1@Example.org", strip).unwrap(), "agent1");
        let exact = UsernameRule {
            strip_domain: false,
            case_insensitive: false,
        };
        assert_eq!(
            normalise("EXAMPLE\\Agent1", exact).unwrap(),
            "EXAMPLE\\Agent1"
        );
        let keep_domain = UsernameRule {
            strip_domain: false,
            case_insensitive: true,
        };
        assert_eq!(
            normalise("EXAMPLE\\Agent1", keep_domain).unwrap(),
            "example\\agent1"
        );
    }

    #[test]
    fn precis_refuses_compatibility_characters() {
        let rule = UsernameRule::default();
        // U+212A KELVIN SIGN: lower-cases to 'k', NFKC to 'K': refused, not folded into "kate".
        let e = normalise("\u{212A}ate", rule).unwrap_err();
        assert!(e.why.contains("U+212A"), "{e}");
        assert!(normalise("agent 1", rule).is_err());
        assert!(normalise("\u{FB01}le", rule).is_err(), "ligature fi");
        // Fullwidth letters are width-mapped, and case is mapped: the same user.
        assert_eq!(normalise("ＫＡＴＥ", rule).unwrap(), "kate");
        assert_eq!(normalise("Ödön", rule).unwrap(), "ödön");
        // Case-preserved: still refuses the Kelvin sign, keeps case.
        assert!(precis("\u{212A}ate", false).is_err());
        assert_eq!(precis("Kate", false).unwrap(), "Kate");
    }

    #[test]
    fn a_domain_must_be_the_tenants() {
        let acme = tenant(1, "acme", &["acme.example", "acme"]);
        assert_eq!(
            claim_identity("ACME\\Agent1", &acme, &[]).unwrap(),
            "agent1"
        );
        assert_eq!(
            claim_identity("agent1@Acme.Example", &acme, &[]).unwrap(),
            "agent1"
        );
        assert_eq!(claim_identity("agent1", &acme, &[]).unwrap(), "agent1");
        assert_eq!(
            claim_identity("EVIL\\agent1", &acme, &[]),
            Err(IdentityError::ForeignDomain {
                domain: "EVIL".into()
            })
        );
        assert_eq!(
            claim_identity("agent1@evil.example", &acme, &[]),
            Err(IdentityError::ForeignDomain {
                domain: "evil.example".into()
            })
        );
        // A non-ASCII look-alike of a login domain matches nothing.
        assert!(matches!(
            claim_identity("agent1@\u{0430}cme.example", &acme, &[]),
            Err(IdentityError::ForeignDomain { .. })
        ));
    }

    #[test]
    fn a_shared_idp_routes_by_domain() {
        let acme = tenant(1, "acme", &["acme.example"]);
        let globex = tenant(2, "globex", &["globex.example"]);
        let both = [acme.clone(), globex.clone()];
        assert_eq!(
            claim_identity("agent1@globex.example", &acme, &both),
            Err(IdentityError::OtherTenant {
                domain: "globex.example".into(),
                other: "globex".into()
            })
        );
        assert_eq!(
            claim_identity("agent1", &acme, &both),
            Err(IdentityError::NoDomain)
        );
        assert_eq!(
            tenant_of_claim("agent1@GLOBEX.example", &both).map(|t| t.name.as_str()),
            Some("globex")
        );
        assert!(tenant_of_claim("agent1", &both).is_none());
        assert!(tenant_of_claim("agent1@evil.example", &both).is_none());
        assert_eq!(
            tenant_of_claim("agent1", &both[..1]).map(|t| t.name.as_str()),
            Some("acme")
        );
    }

    #[test]
    fn refuses_unusable_names() {
        assert!(check_username("").is_err());
        assert!(check_username(" bob").is_err());
        assert!(check_username("bo\u{0}b").is_err());
        assert!(check_username("bob").is_ok());
    }
}
