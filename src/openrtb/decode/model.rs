//! Reads each type of the request model off the tape, with the same rules as its serde
//! derive in `request.rs`: unknown keys are skipped, a modelled key seen twice in one
//! object is an error, `null` reads as absent, numbers are lenient.
//!
//! One difference, on purpose: serde's derives also accept a JSON array in place of an
//! object (fields by position), which no exchange sends; here that is an error.

use super::tape::{Cursor, Malformed, Read};
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

/// A list the decoder can size up front: `Vec` or the model's inline [`List`].
trait Reserve<T> {
    fn with_capacity(n: usize) -> Self;
    fn push(&mut self, v: T);
}

impl<T> Reserve<T> for Vec<T> {
    fn with_capacity(n: usize) -> Self {
        Vec::with_capacity(n)
    }
    fn push(&mut self, v: T) {
        Vec::push(self, v)
    }
}

impl<T, const N: usize> Reserve<T> for List<T, N> {
    fn with_capacity(n: usize) -> Self {
        List::with_capacity(n)
    }
    fn push(&mut self, v: T) {
        List::push(self, v)
    }
}

/// An array of objects, each read by `read` (which gives `None` for `null`); `null`
/// reads as empty, a `null` element is an error.
fn list<'a, T, F, L>(c: &mut Cursor<'_, 'a>, mut read: F) -> Read<L>
where
    F: for<'t> FnMut(&mut Cursor<'t, 'a>) -> Read<Option<T>>,
    L: Reserve<T>,
{
    let mut out = L::with_capacity(c.peek_len());
    c.array(|c| {
        out.push(read(c)?.ok_or(Malformed)?);
        Ok(())
    })?;
    Ok(out)
}

/// The whole body: one object, nothing after it.
pub(crate) fn request<'a>(c: &mut Cursor<'_, 'a>) -> Read<BidRequest<'a>> {
    let mut r = BidRequest {
        at: DEFAULT_AT,
        ..BidRequest::default()
    };
    let present = fields!(c, |c| {
        "id" => r.id = c.str()?,
        "imp" => r.imp = list(c, imp)?,
        "site" => r.site = site(c)?,
        "app" => r.app = app(c)?,
        "device" => r.device = device(c)?,
        "user" => r.user = user(c)?,
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
    Ok(r)
}

fn imp<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Imp<'a>>> {
    let mut i = Imp::default();
    let present = fields!(c, |c| {
        "id" => i.id = c.str()?,
        "banner" => i.banner = banner(c)?,
        "video" => i.video = video(c)?,
        "native" => i.native = native(c)?,
        "pmp" => i.pmp = pmp(c)?,
        "bidfloor" => i.bidfloor = c.num()?.price()?,
        "bidfloorcur" => i.bidfloorcur = c.opt_str()?,
        "secure" => i.secure = c.num()?.opt_u8()?,
        "instl" => i.instl = c.num()?.opt_u8()?.unwrap_or_default(),
        "tagid" => i.tagid = c.opt_str()?,
    })?;
    Ok(present.then_some(i))
}

fn format(c: &mut Cursor<'_, '_>) -> Read<Option<Format>> {
    let mut f = Format::default();
    let present = fields!(c, |c| {
        "w" => f.w = c.num()?.opt_u32()?.unwrap_or_default(),
        "h" => f.h = c.num()?.opt_u32()?.unwrap_or_default(),
    })?;
    Ok(present.then_some(f))
}

fn banner(c: &mut Cursor<'_, '_>) -> Read<Option<Banner>> {
    let mut b = Banner::default();
    let present = fields!(c, |c| {
        "w" => b.w = c.num()?.opt_u32()?,
        "h" => b.h = c.num()?.opt_u32()?,
        "format" => b.format = list(c, format)?,
        "battr" => b.battr = c.u32s()?,
        "btype" => b.btype = c.u32s()?,
    })?;
    Ok(present.then_some(b))
}

fn video<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Video<'a>>> {
    let mut v = Video::default();
    let present = fields!(c, |c| {
        "mimes" => v.mimes = c.strs()?,
        "minduration" => v.minduration = c.num()?.opt_u32()?,
        "maxduration" => v.maxduration = c.num()?.opt_u32()?,
        "protocols" => v.protocols = c.u32s()?,
        "protocol" => v.protocol = c.num()?.opt_u32()?,
        "w" => v.w = c.num()?.opt_u32()?,
        "h" => v.h = c.num()?.opt_u32()?,
        "battr" => v.battr = c.u32s()?,
    })?;
    Ok(present.then_some(v))
}

fn native<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Native<'a>>> {
    let mut n = Native::default();
    let present = fields!(c, |c| {
        "request" => n.request = c.str()?,
        "ver" => n.ver = c.opt_str()?,
        "battr" => n.battr = c.u32s()?,
    })?;
    Ok(present.then_some(n))
}

fn pmp<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Pmp<'a>>> {
    let mut p = Pmp::default();
    let present = fields!(c, |c| {
        "private_auction" => p.private_auction = c.num()?.opt_u8()?.unwrap_or_default(),
        "deals" => p.deals = list(c, deal)?,
    })?;
    Ok(present.then_some(p))
}

fn deal<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Deal<'a>>> {
    let mut d = Deal::default();
    let present = fields!(c, |c| {
        "id" => d.id = c.str()?,
        "bidfloor" => d.bidfloor = c.num()?.price()?,
        "bidfloorcur" => d.bidfloorcur = c.opt_str()?,
        "wseat" => d.wseat = c.strs()?,
        "at" => d.at = c.num()?.opt_u32()?,
    })?;
    Ok(present.then_some(d))
}

fn publisher<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Publisher<'a>>> {
    let mut p = Publisher::default();
    let present = fields!(c, |c| {
        "id" => p.id = c.opt_str()?,
        "domain" => p.domain = c.opt_str()?,
    })?;
    Ok(present.then_some(p))
}

fn site<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Site<'a>>> {
    let mut s = Site::default();
    let present = fields!(c, |c| {
        "id" => s.id = c.opt_str()?,
        "domain" => s.domain = c.opt_str()?,
        "page" => s.page = c.opt_str()?,
        "cat" => s.cat = c.strs()?,
        "publisher" => s.publisher = publisher(c)?,
    })?;
    Ok(present.then_some(s))
}

fn app<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<App<'a>>> {
    let mut a = App::default();
    let present = fields!(c, |c| {
        "id" => a.id = c.opt_str()?,
        "bundle" => a.bundle = c.opt_str()?,
        "domain" => a.domain = c.opt_str()?,
        "cat" => a.cat = c.strs()?,
        "publisher" => a.publisher = publisher(c)?,
    })?;
    Ok(present.then_some(a))
}

fn geo<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Geo<'a>>> {
    let mut g = Geo::default();
    let present = fields!(c, |c| {
        "country" => g.country = c.opt_str()?,
        "region" => g.region = c.opt_str()?,
        "city" => g.city = c.opt_str()?,
    })?;
    Ok(present.then_some(g))
}

fn device<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Device<'a>>> {
    let mut d = Device::default();
    let present = fields!(c, |c| {
        "devicetype" => d.devicetype = c.num()?.opt_u32()?,
        "os" => d.os = c.opt_str()?,
        "geo" => d.geo = geo(c)?,
    })?;
    Ok(present.then_some(d))
}

fn segment<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Segment<'a>>> {
    let mut s = Segment::default();
    let present = fields!(c, |c| {
        "id" => s.id = c.opt_str()?,
    })?;
    Ok(present.then_some(s))
}

fn data<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<Data<'a>>> {
    let mut d = Data::default();
    let present = fields!(c, |c| {
        "id" => d.id = c.opt_str()?,
        "segment" => d.segment = list(c, segment)?,
    })?;
    Ok(present.then_some(d))
}

fn user<'a>(c: &mut Cursor<'_, 'a>) -> Read<Option<User<'a>>> {
    let mut u = User::default();
    let present = fields!(c, |c| {
        "id" => u.id = c.opt_str()?,
        "buyeruid" => u.buyeruid = c.opt_str()?,
        "geo" => u.geo = geo(c)?,
        "data" => u.data = list(c, data)?,
    })?;
    Ok(present.then_some(u))
}
