//! The admin listener's bearer token (`admin.token`).
//!
//! The configured token is kept only as a MAC of it. A presented token is MACed the
//! same way and the two 32-byte tags are compared in constant time, so the time a
//! check takes depends neither on where a wrong token first differs nor on the
//! configured token's length.

#![forbid(unsafe_code)]

use hmac::{Hmac, KeyInit, Mac};
use http::header::{HeaderMap, AUTHORIZATION};
use sha2::Sha256;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A bearer token that is not `admin.token`.
    Wrong,
}

/// A configured token.
pub struct Token {
    /// The MAC of the configured token.
    expected: Vec<u8>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The MAC tokens are compared through. Its key is no secret: it only makes two
/// fixed-length tags out of two tokens of any length.
fn mac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

impl Token {
    /// `None` for an empty token: no authentication.
    pub fn new(secret: &str) -> Option<Token> {
        if secret.is_empty() {
            return None;
        }
        let mut m = mac();
        m.update(secret.as_bytes());
        Some(Token {
            expected: m.finalize().into_bytes().to_vec(),
        })
    }

    /// Whether `headers` carry this token as `Authorization: Bearer <token>`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let value = headers.get(AUTHORIZATION).ok_or(Refusal::Missing)?;
        let presented = bearer(value.as_bytes()).ok_or(Refusal::Missing)?;
        let mut m = mac();
        m.update(presented);
        m.verify_slice(&self.expected).map_err(|_| Refusal::Wrong)
    }
}

/// The token of a `Bearer <token>` credential (the scheme's name is case-insensitive,
/// RFC 9110 11.1); `None` for another scheme.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let token = Token::new("s3cret-admin-token-0123").unwrap();
        assert_eq!(token.check(&with("Bearer s3cret-admin-token-0123")), Ok(()));
        assert_eq!(
            token.check(&with("bearer  s3cret-admin-token-0123 ")),
            Ok(())
        );
        for wrong in [
            "Bearer s3cret-admin-token-0124",
            "Bearer s3cret-admin-token-012",
            "Bearer s3cret-admin-token-01234",
            "Bearer ",
        ] {
            assert_eq!(token.check(&with(wrong)), Err(Refusal::Wrong), "{wrong}");
        }
        for missing in ["Basic czNjcmV0", "s3cret-admin-token-0123", "Bearer"] {
            assert_eq!(
                token.check(&with(missing)),
                Err(Refusal::Missing),
                "{missing}"
            );
        }
        assert_eq!(token.check(&HeaderMap::new()), Err(Refusal::Missing));
    }

    #[test]
    fn an_empty_token_means_none_and_debug_hides_it() {
        assert!(Token::new("").is_none());
        let token = Token::new("s3cret-admin-token-0123").unwrap();
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
