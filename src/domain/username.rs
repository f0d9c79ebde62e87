//! Username rules (DESIGN §3.1 step 4, field note 8): ADFS's `windowsaccountname` gives
//! `DOMAIN\user`, `upn` gives `user@domain`; the tenant's rule says what is compared with the
//! user names it holds.

use super::UsernameRule;

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

/// The form a name is compared and stored in under `rule`.
pub fn normalise(name: &str, rule: UsernameRule) -> String {
    let base = if rule.strip_domain {
        split(name).user
    } else {
        name.trim()
    };
    if rule.case_insensitive {
        base.to_lowercase()
    } else {
        base.to_string()
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
        assert_eq!(normalise("EXAMPLE\\Agent1", strip), "agent1");
        assert_eq!(normalise("Agent1@Example.org", strip), "agent1");
        let exact = UsernameRule {
            strip_domain: false,
            case_insensitive: false,
        };
        assert_eq!(normalise("EXAMPLE\\Agent1", exact), "EXAMPLE\\Agent1");
        let keep_domain = UsernameRule {
            strip_domain: false,
            case_insensitive: true,
        };
        assert_eq!(normalise("EXAMPLE\\Agent1", keep_domain), "example\\agent1");
    }

    #[test]
    fn refuses_unusable_names() {
        assert!(check_username("").is_err());
        assert!(check_username(" bob").is_err());
        assert!(check_username("bo\u{0}b").is_err());
        assert!(check_username("bob").is_ok());
    }
}
