//! SAML metadata: build ours, import the IdP's.

pub mod idp;
pub mod sp;

pub use idp::{Endpoint, IdpDescriptor, MetadataError, parse_idp_metadata};
pub use sp::SpMetadata;
