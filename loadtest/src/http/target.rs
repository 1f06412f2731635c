//! Target URLs: `http://host[:port]/path`, resolved once, loopback only unless allowed.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{anyhow, bail, Context, Result};

/// One bidder endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The `Host` header value (`host` or `host:port`).
    pub host: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The resolved address that connections go to.
    pub addr: SocketAddr,
}

/// Whether `ip` is on this machine's loopback (127.0.0.0/8 or ::1, also as a mapped IPv4).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Parses and resolves `url`. Every address the host resolves to must be loopback
/// unless `allow_remote` is set.
pub fn parse(url: &str, allow_remote: bool) -> Result<Target> {
    let rest = match url.strip_prefix("http://") {
        Some(r) => r,
        None if url.starts_with("https://") => bail!(
            "{url}: https is not supported; use plain http (TLS would dominate the measurement)"
        ),
        None => bail!("{url}: expected a URL such as http://127.0.0.1:8080/openrtb2/bid/example"),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("{url}: expected http://host[:port]/path");
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        bail!("{url}: the path must not contain spaces or control characters");
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| anyhow!("{url}: bad host or port"))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {host}"))?
        .collect();
    if addrs.is_empty() {
        bail!("{url}: {host} resolves to no address");
    }
    if !allow_remote {
        if let Some(a) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            bail!("{url}: {} is not a loopback address; only 127.0.0.0/8 and ::1 are targeted unless --allow-remote is given", a.ip());
        }
    }
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .copied()
        .unwrap_or(addrs[0]);
    Ok(Target {
        url: url.to_string(),
        host: authority.to_string(),
        path,
        addr,
    })
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') => Some((h, p.parse().ok()?)),
        Some(_) => None,
        None => Some((authority, 80)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_urls() {
        let t = parse("http://127.0.0.1:8080/openrtb2/bid/example", false).unwrap();
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/openrtb2/bid/example");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        let t = parse("http://127.0.0.2", false).unwrap();
        assert_eq!((t.path.as_str(), t.addr.port()), ("/", 80));
        let t = parse("http://[::1]:9000/x?y=1", false).unwrap();
        assert_eq!(t.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(t.path, "/x?y=1");
        assert!(parse("http://localhost:1/", false)
            .unwrap()
            .addr
            .ip()
            .is_loopback());
    }

    #[test]
    fn refuses_remote_and_malformed_targets() {
        let e = parse("http://10.1.2.3:80/", false).unwrap_err().to_string();
        assert!(e.contains("--allow-remote"), "{e}");
        assert!(parse("http://192.168.0.1/", false).is_err());
        assert!(parse("http://[2001:db8::1]:80/", false).is_err());
        assert!(parse("http://10.1.2.3:80/", true).is_ok());
        assert!(parse("https://127.0.0.1/", false).is_err());
        assert!(parse("127.0.0.1:80", false).is_err());
        assert!(parse("http://127.0.0.1:notaport/", false).is_err());
        assert!(parse("http:///x", false).is_err());
        assert!(parse("http://127.0.0.1/a b", false).is_err());
    }
}
