//! Where an impression is placed: the site or app facts and the creative formats that
//! targeting reads from a request.

#![forbid(unsafe_code)]

use super::index::Format;
use super::keys::{page_host, Lower};
use crate::openrtb::request::{BidRequest, Imp, Publisher, Str};

/// What kind of inventory the impression is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaceKind {
    Site = 0,
    App = 1,
    /// Neither `site` nor `app`.
    Neither = 2,
}

/// Where the impression is: the site or app facts that targeting reads.
pub(crate) struct Place<'r> {
    pub kind: PlaceKind,
    /// `site.domain` (else the host of `site.page`) or `app.domain`.
    pub domain: Option<&'r str>,
    pub bundle: Option<&'r str>,
    pub publisher: Option<&'r str>,
    pub cats: &'r [Str<'r>],
}

pub(crate) fn place<'r>(req: &'r BidRequest<'_>) -> Place<'r> {
    let publisher = |p: &'r Option<Publisher<'_>>| p.as_ref().and_then(|p| p.id.as_deref());
    if let Some(s) = &req.site {
        let domain = s
            .domain
            .as_deref()
            .or_else(|| s.page.as_deref().and_then(page_host));
        let publisher = publisher(&s.publisher);
        Place {
            kind: PlaceKind::Site,
            domain,
            bundle: None,
            publisher,
            cats: &s.cat,
        }
    } else if let Some(a) = &req.app {
        let (domain, bundle) = (a.domain.as_deref(), a.bundle.as_deref());
        Place {
            kind: PlaceKind::App,
            domain,
            bundle,
            publisher: publisher(&a.publisher),
            cats: &a.cat,
        }
    } else {
        Place {
            kind: PlaceKind::Neither,
            domain: None,
            bundle: None,
            publisher: None,
            cats: &[],
        }
    }
}

/// Calls `f` with every creative format `imp` accepts (MIME types lowercased).
pub(crate) fn imp_formats(imp: &Imp<'_>, lower: &mut Lower, mut f: impl FnMut(Format<'_>)) {
    if let Some(b) = &imp.banner {
        for (w, h) in b.sizes() {
            f(Format::Banner(w, h));
        }
    }
    if let Some(v) = &imp.video {
        if v.mimes.is_empty() {
            f(Format::AnyVideo);
        }
        for m in &v.mimes {
            if let Some(m) = lower.of(m.trim()) {
                f(Format::Video(m));
            }
        }
    }
    if imp.native.is_some() {
        f(Format::Native);
    }
}
