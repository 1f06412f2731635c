//! HTTP/1.1 client side, minimal and allocation-free per request: target URLs,
//! pre-serialised requests, and an incremental response parser.

pub mod price;
pub mod request;
pub mod response;
pub mod target;
