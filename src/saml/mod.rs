//! Pure SAML 2.0: bytes in, typed values out. No network, no files, no clock (`now` is always a
//! parameter), no logging.

pub mod authn_request;
pub mod bindings;
pub mod echo;
pub mod error;
pub mod logout;
pub mod metadata;
pub mod replay;
pub mod response;
pub mod time;
pub mod trace;
pub mod xml;
pub mod xmldsig;
pub mod xmlenc;

pub use error::{Error, MessageError, Rejection, SignatureError};
pub use response::{
    Assertion, ExpectedContext, Solicitation, UnredeemedAssertion, UnverifiedResponse,
    UsernameSource, VerifiedResponse, VerifyOptions,
};
pub use time::UnixTime;
