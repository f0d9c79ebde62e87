//! ssogate: SAML 2.0 single sign-on in front of a contact-center agent portal.

pub mod admin_cli;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod oidc;
pub mod outbound;
pub mod rng;
pub mod saml;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod web;
