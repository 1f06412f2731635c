//! OpenRTB 2.5/2.6: the request model, its decoder and the response encoder.
//! Pure code: no runtime, no I/O.

pub mod decode;
pub mod lenient;
pub mod request;
pub mod response;

pub use decode::{DecodeError, Decoder, PADDING};
pub use request::BidRequest;
