//! Reads each type of the request model off the tape, with the same rules as its serde
//! derive in `request.rs`: unknown keys are skipped, a modelled key seen twice in one
//! object is an error, `null` reads as absent, numbers are lenient.
//!
//! One difference, on purpose: serde's derives also accept a JSON array in place of an
//! object (fields by position), which no exchange sends; here that is an error.

#![forbid(unsafe_code)]

use super::cursor::{Cursor, Read};
use super::Malformed;
use crate::openrtb::request::{
    App, Banner, BidRequest, Data, Deal, Device, Format, Geo, Imp, List, Native, Pmp, Publisher,
    Segment, Site, User, Video, DEFAULT_AT,
};

/// Reads an object: each `"key" => statement` arm reads that key's value through the
/// cursor `$c`; unknown keys are skipped; a listed key seen twice is [`Malformed`].
/// Evaluates to `Read<bool>`: `Ok(false)` when the value is `null`.
macro_rules! fields {
    ($cursor:expr, |$c:ident| { $($key:literal => $read:expr),* $(,)? }) => {{
        let mut seen = 0u32;
        $cursor.object(|$c, key| {
            let mut bit = 1u32;
            $(
                if key == $key {
                    if seen & bit != 0 {
                        return Err(Malformed);
                    }
                    seen |= bit;
                    $read;
                    return Ok(());
                }
                bit <<= 1;
            )*
            let _ = bit;
            $c.skip()
        })
    }};
}

/// A list the decoder fills in place: `Vec` or the model's inline [`List`] (a `List`
/// holds its first elements inline: building elements elsewhere and moving them in
/// copied them).
trait Items<T> {
    /// Appends `T::default()` and returns it, to be read into where it lies.
    fn push_default(&mut self) -> &mut T;
}

impl<T: Default> Items<T> for Vec<T> {
    fn push_default(&mut self) -> &mut T {
        self.push(T::default());
        let last = self.len() - 1;
        &mut self[last]
    }
}

impl<T: Default, const N: usize> Items<T> for List<T, N> {
    fn push_default(&mut self) -> &mut T {
        self.push(T::default());
        let last = self.len() - 1;
        &mut self[last]
    }
}

/// Reads an object's fields into `T` where it lies; `Ok(false)` for `null`.
///
/// Every reader below fills a value in place rather than returning it: the model's
/// structs are large (a `BidRequest` is over a kilobyte), and returning them through
/// `Result`s and `Option`s copied each of them several times per request.
type Fill<'a, T> = for<'t> fn(&mut Cursor<'t, 'a>, &mut T) -> Read<bool>;

/// An optional object: `out` becomes `Some` with the object's fields, or `None` for
/// `null`.
fn opt<'a, T: Default>(c: &mut Cursor<'_, 'a>, out: &mut Option<T>, fill: Fill<'a, T>) -> Read<()> {
    let v = out.insert(T::default());
    if !fill(c, v)? {
        *out = None;
    }
    Ok(())
}

/// An array of objects, each read in place by `fill`; `null` reads as empty, a `null`
/// element is an error.
fn list<'a, T: Default, L: Items<T>>(
    c: &mut Cursor<'_, 'a>,
    out: &mut L,
    fill: Fill<'a, T>,
) -> Read<()> {
    c.array(|c| {
        if fill(c, out.push_default())? {
            Ok(())
        } else {
            Err(Malformed)
        }
    })
}

/// The whole body, read into `r` (which must be `BidRequest::default()`): one object,
/// nothing after it. At most `max_imps` imps are read: one more stops the read and sets
/// `too_many_imps`, so a request of thousands of imps costs no more than the limit.
pub(crate) fn request<'a>(
    c: &mut Cursor<'_, 'a>,
    r: &mut BidRequest<'a>,
    max_imps: usize,
    too_many_imps: &mut bool,
) -> Read<()> {
    r.at = DEFAULT_AT;
    let present = fields!(c, |c| {
        "id" => r.id = c.str()?,
        "imp" => imps(c, &mut r.imp, max_imps, too_many_imps)?,
        "site" => opt(c, &mut r.site, site)?,
        "app" => opt(c, &mut r.app, app)?,
        "device" => opt(c, &mut r.device, device)?,
        "user" => opt(c, &mut r.user, user)?,
        "test" => r.test = c.num()?.opt_u8()?.unwrap_or_default(),
        "at" => r.at = c.num()?.opt_u32()?.unwrap_or(DEFAULT_AT),
        "tmax" => r.tmax = c.num()?.opt_u32()?,
        "cur" => r.cur = c.strs()?,
        "bcat" => r.bcat = c.strs()?,
        "badv" => r.badv = c.strs()?,
        "bapp" => r.bapp = c.strs()?,
        "wseat" => r.wseat = c.strs()?,
        "bseat" => r.bseat = c.strs()?,
    })?;
    if !present || !c.at_end() {
        return Err(Malformed);
    }
    Ok(())
}

/// The imps, at most `max` (see [`request`]).
fn imps<'a>(
    c: &mut Cursor<'_, 'a>,
    out: &mut List<Imp<'a>, 1>,
    max: usize,
    over: &mut bool,
) -> Read<()> {
    c.array(|c| {
        if out.len() >= max {
            *over = true;
            return Err(Malformed);
        }
        if imp(c, out.push_default())? {
            Ok(())
        } else {
            Err(Malformed)
        }
    })
}

fn imp<'a>(c: &mut Cursor<'_, 'a>, i: &mut Imp<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => i.id = c.str()?,
        "banner" => opt(c, &mut i.banner, banner)?,
        "video" => opt(c, &mut i.video, video)?,
        "native" => opt(c, &mut i.native, native)?,
        "pmp" => opt(c, &mut i.pmp, pmp)?,
        "bidfloor" => i.bidfloor = c.num()?.price()?,
        "bidfloorcur" => i.bidfloorcur = c.opt_str()?,
        "secure" => i.secure = c.num()?.opt_u8()?,
        "instl" => i.instl = c.num()?.opt_u8()?.unwrap_or_default(),
        "tagid" => i.tagid = c.opt_str()?,
    })
}

fn format(c: &mut Cursor<'_, '_>, f: &mut Format) -> Read<bool> {
    fields!(c, |c| {
        "w" => f.w = c.num()?.opt_u32()?.unwrap_or_default(),
        "h" => f.h = c.num()?.opt_u32()?.unwrap_or_default(),
    })
}

fn banner(c: &mut Cursor<'_, '_>, b: &mut Banner) -> Read<bool> {
    fields!(c, |c| {
        "w" => b.w = c.num()?.opt_u32()?,
        "h" => b.h = c.num()?.opt_u32()?,
        "format" => list(c, &mut b.format, format)?,
        "battr" => b.battr = c.u32s()?,
        "btype" => b.btype = c.u32s()?,
    })
}

fn video<'a>(c: &mut Cursor<'_, 'a>, v: &mut Video<'a>) -> Read<bool> {
    fields!(c, |c| {
        "mimes" => v.mimes = c.strs()?,
        "minduration" => v.minduration = c.num()?.opt_u32()?,
        "maxduration" => v.maxduration = c.num()?.opt_u32()?,
        "protocols" => v.protocols = c.u32s()?,
        "protocol" => v.protocol = c.num()?.opt_u32()?,
        "w" => v.w = c.num()?.opt_u32()?,
        "h" => v.h = c.num()?.opt_u32()?,
        "battr" => v.battr = c.u32s()?,
    })
}

fn native<'a>(c: &mut Cursor<'_, 'a>, n: &mut Native<'a>) -> Read<bool> {
    fields!(c, |c| {
        "request" => n.request = c.str()?,
        "ver" => n.ver = c.opt_str()?,
        "battr" => n.battr = c.u32s()?,
    })
}

fn pmp<'a>(c: &mut Cursor<'_, 'a>, p: &mut Pmp<'a>) -> Read<bool> {
    fields!(c, |c| {
        "private_auction" => p.private_auction = c.num()?.opt_u8()?.unwrap_or_default(),
        "deals" => list(c, &mut p.deals, deal)?,
    })
}

fn deal<'a>(c: &mut Cursor<'_, 'a>, d: &mut Deal<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => d.id = c.str()?,
        "bidfloor" => d.bidfloor = c.num()?.price()?,
        "bidfloorcur" => d.bidfloorcur = c.opt_str()?,
        "wseat" => d.wseat = c.strs()?,
        "at" => d.at = c.num()?.opt_u32()?,
    })
}

fn publisher<'a>(c: &mut Cursor<'_, 'a>, p: &mut Publisher<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => p.id = c.opt_str()?,
        "domain" => p.domain = c.opt_str()?,
    })
}

fn site<'a>(c: &mut Cursor<'_, 'a>, s: &mut Site<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => s.id = c.opt_str()?,
        "domain" => s.domain = c.opt_str()?,
        "page" => s.page = c.opt_str()?,
        "cat" => s.cat = c.strs()?,
        "publisher" => opt(c, &mut s.publisher, publisher)?,
    })
}

fn app<'a>(c: &mut Cursor<'_, 'a>, a: &mut App<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => a.id = c.opt_str()?,
        "bundle" => a.bundle = c.opt_str()?,
        "domain" => a.domain = c.opt_str()?,
        "cat" => a.cat = c.strs()?,
        "publisher" => opt(c, &mut a.publisher, publisher)?,
    })
}

fn geo<'a>(c: &mut Cursor<'_, 'a>, g: &mut Geo<'a>) -> Read<bool> {
    fields!(c, |c| {
        "country" => g.country = c.opt_str()?,
        "region" => g.region = c.opt_str()?,
        "city" => g.city = c.opt_str()?,
    })
}

fn device<'a>(c: &mut Cursor<'_, 'a>, d: &mut Device<'a>) -> Read<bool> {
    fields!(c, |c| {
        "devicetype" => d.devicetype = c.num()?.opt_u32()?,
        "os" => d.os = c.opt_str()?,
        "geo" => opt(c, &mut d.geo, geo)?,
        "ifa" => d.ifa = c.opt_str()?,
    })
}

fn segment<'a>(c: &mut Cursor<'_, 'a>, s: &mut Segment<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => s.id = c.opt_str()?,
    })
}

fn data<'a>(c: &mut Cursor<'_, 'a>, d: &mut Data<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => d.id = c.opt_str()?,
        "segment" => list(c, &mut d.segment, segment)?,
    })
}

fn user<'a>(c: &mut Cursor<'_, 'a>, u: &mut User<'a>) -> Read<bool> {
    fields!(c, |c| {
        "id" => u.id = c.opt_str()?,
        "buyeruid" => u.buyeruid = c.opt_str()?,
        "geo" => opt(c, &mut u.geo, geo)?,
        "data" => list(c, &mut u.data, data)?,
    })
}
