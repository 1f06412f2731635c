//! A cursor over simd-json's tape: the flat list of nodes stage 2 builds, where an
//! object or array node carries the number of nodes inside it. Skipping a value the
//! model does not read (`ext`, `ua`, a whole `regs` object) is one addition.
//!
//! Every read checks the node it gets, so a tape that does not have the expected shape
//! is a [`Malformed`] error, never a panic.

use simd_json::{Node, StaticNode};

use crate::openrtb::lenient::Num;
use crate::openrtb::request::{List, Str};

/// The body is JSON, but not of the shape the model expects (or the tape ended early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

pub(crate) type Read<T> = Result<T, Malformed>;

impl From<crate::openrtb::lenient::BadNumber> for Malformed {
    fn from(_: crate::openrtb::lenient::BadNumber) -> Self {
        Malformed
    }
}

/// Reads values off a tape, front to back. Each read consumes exactly one value.
pub(crate) struct Cursor<'t, 'a> {
    nodes: &'t [Node<'a>],
    pos: usize,
}

impl<'t, 'a> Cursor<'t, 'a> {
    pub(crate) fn new(nodes: &'t [Node<'a>]) -> Self {
        Cursor { nodes, pos: 0 }
    }

    /// True once every node has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.nodes.len()
    }

    #[inline]
    fn next(&mut self) -> Read<Node<'a>> {
        let node = *self.nodes.get(self.pos).ok_or(Malformed)?;
        self.pos += 1;
        Ok(node)
    }

    /// Skips the next value, however large, without looking inside it.
    #[inline]
    pub(crate) fn skip(&mut self) -> Read<()> {
        match self.next()? {
            Node::Object { count, .. } | Node::Array { count, .. } => {
                self.pos = self.pos.saturating_add(count);
            }
            Node::String(_) | Node::Static(_) => {}
        }
        Ok(())
    }

    /// Reads an object, calling `field` with each key; `field` must read or skip the
    /// value. `null` reads as absent (`Ok(false)`).
    #[inline]
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str) -> Read<()>,
    ) -> Read<bool> {
        let len = match self.next()? {
            Node::Object { len, .. } => len,
            Node::Static(StaticNode::Null) => return Ok(false),
            _ => return Err(Malformed),
        };
        for _ in 0..len {
            let Node::String(key) = self.next()? else {
                return Err(Malformed);
            };
            field(self, key)?;
        }
        Ok(true)
    }

    /// Reads an array, calling `elem` once per element; `elem` must read or skip it.
    /// `null` reads as empty.
    #[inline]
    pub(crate) fn array(&mut self, mut elem: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        let len = match self.next()? {
            Node::Array { len, .. } => len,
            Node::Static(StaticNode::Null) => return Ok(()),
            _ => return Err(Malformed),
        };
        for _ in 0..len {
            elem(self)?;
        }
        Ok(())
    }

    /// The length of the array at the cursor (0 if it is not an array), for reserving;
    /// capped, so a hostile length cannot reserve much memory.
    #[inline]
    pub(crate) fn peek_len(&self) -> usize {
        match self.nodes.get(self.pos) {
            Some(Node::Array { len, .. }) => (*len).min(MAX_RESERVE),
            _ => 0,
        }
    }

    /// A string, borrowed from the body (simd-json unescapes in place); `null` is absent.
    #[inline]
    pub(crate) fn opt_str(&mut self) -> Read<Option<Str<'a>>> {
        match self.next()? {
            Node::String(s) => Ok(Some(Str::borrowed(s))),
            Node::Static(StaticNode::Null) => Ok(None),
            _ => Err(Malformed),
        }
    }

    /// A string where `null` means the same as empty.
    #[inline]
    pub(crate) fn str(&mut self) -> Read<Str<'a>> {
        Ok(self.opt_str()?.unwrap_or_default())
    }

    /// An array of strings; `null` reads as empty, a `null` element is an error.
    pub(crate) fn strs<const N: usize>(&mut self) -> Read<List<Str<'a>, N>> {
        let mut out = List::with_capacity(self.peek_len());
        self.array(|c| match c.next()? {
            Node::String(s) => {
                out.push(Str::borrowed(s));
                Ok(())
            }
            _ => Err(Malformed),
        })?;
        Ok(out)
    }

    /// A number, read leniently (see [`lenient`](crate::openrtb::lenient)).
    #[inline]
    pub(crate) fn num(&mut self) -> Read<Num> {
        Ok(match self.next()? {
            Node::Static(StaticNode::U64(u)) => Num::Int(u as i128),
            Node::Static(StaticNode::I64(i)) => Num::Int(i as i128),
            Node::Static(StaticNode::F64(f)) => Num::Float(f),
            Node::Static(StaticNode::Bool(b)) => Num::Int(b as i128),
            Node::Static(StaticNode::Null) => Num::Null,
            Node::String(s) => Num::parse(s)?,
            Node::Object { .. } | Node::Array { .. } => return Err(Malformed),
        })
    }

    /// An array of small integers, each read leniently; `null` elements are dropped.
    pub(crate) fn u32s<const N: usize>(&mut self) -> Read<List<u32, N>> {
        let mut out = List::with_capacity(self.peek_len());
        self.array(|c| {
            if let Some(v) = c.num()?.opt_u32()? {
                out.push(v);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// The most elements reserved up front for one array; longer arrays grow as usual.
const MAX_RESERVE: usize = 16;
