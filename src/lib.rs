//! ssogate: SAML 2.0 single sign-on in front of a contact-center agent portal.

pub mod cli;
pub mod clock;
pub mod saml;
