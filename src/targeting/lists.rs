//! Building posting sets: campaign numbers collected per targeting value while the
//! index walks the campaigns in price order, then frozen into [`Posting`]s.

#![forbid(unsafe_code)]

use std::hash::Hash;

use super::index::{AllowDim, BySecure};
use super::keys::{KeyMap, KeyTable};
use super::posting::{Posting, PostingId, EMPTY};

pub(crate) struct Pool {
    pub sets: Vec<Posting>,
    pub chunks: usize,
}

impl Pool {
    pub(crate) fn add(&mut self, ids: &[u32]) -> PostingId {
        if ids.is_empty() {
            return EMPTY;
        }
        self.sets.push(Posting::new(ids, self.chunks));
        (self.sets.len() - 1) as PostingId
    }
}

pub(crate) fn push_once(list: &mut Vec<u32>, id: u32) {
    if list.last() != Some(&id) {
        list.push(id);
    }
}

/// Sorted union of two sorted lists.
pub(crate) fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out.push(x.min(y));
        i += (x <= y) as usize;
        j += (y <= x) as usize;
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Campaign lists per value, filled in campaign order.
pub(crate) struct Lists<K>(KeyMap<K, Vec<u32>>);

impl<K> Default for Lists<K> {
    fn default() -> Self {
        Lists(KeyMap::default())
    }
}

impl<K: Hash + Eq> Lists<K> {
    pub(crate) fn add(&mut self, key: K, id: u32) {
        push_once(self.0.entry(key).or_default(), id);
    }

    pub(crate) fn finish(self, pool: &mut Pool) -> KeyMap<K, PostingId> {
        self.0
            .into_iter()
            .map(|(k, ids)| (k, pool.add(&ids)))
            .collect()
    }
}

pub(crate) struct AllowLists<K> {
    unrestricted: Vec<u32>,
    values: Lists<K>,
}

impl<K> Default for AllowLists<K> {
    fn default() -> Self {
        AllowLists {
            unrestricted: Vec::new(),
            values: Lists::default(),
        }
    }
}

impl<K: Hash + Eq> AllowLists<K> {
    pub(crate) fn add(&mut self, id: u32, values: impl Iterator<Item = K>) {
        let mut any = false;
        for v in values {
            self.values.add(v, id);
            any = true;
        }
        if !any {
            self.unrestricted.push(id);
        }
    }

    pub(crate) fn finish(self, pool: &mut Pool, n: usize) -> AllowDim<KeyMap<K, PostingId>> {
        let unrestricted = (self.unrestricted.len() < n).then(|| pool.add(&self.unrestricted));
        AllowDim {
            unrestricted,
            values: self.values.finish(pool),
        }
    }
}

#[derive(Default)]
pub(crate) struct FilterLists {
    pub allow: AllowLists<Box<str>>,
    pub deny: Lists<Box<str>>,
}

impl FilterLists {
    pub(crate) fn add(
        &mut self,
        id: u32,
        allow: &[String],
        deny: &[String],
        key: fn(&str) -> Box<str>,
    ) {
        self.allow.add(id, allow.iter().map(|s| key(s)));
        for d in deny {
            self.deny.add(key(d), id);
        }
    }
}

pub(crate) fn split_secure<K, K2: Hash + Eq>(
    map: KeyMap<K, PostingId>,
    split: impl Fn(K) -> (K2, bool),
) -> KeyMap<K2, BySecure> {
    let mut out: KeyMap<K2, BySecure> = KeyMap::default();
    for (k, id) in map {
        let (k2, secure) = split(k);
        out.entry(k2).or_insert([EMPTY; 2])[secure as usize] = id;
    }
    out
}

pub(crate) fn table(map: KeyMap<Box<str>, PostingId>) -> KeyTable {
    KeyTable::new(map.into_iter())
}

pub(crate) fn table_dim(dim: AllowDim<KeyMap<Box<str>, PostingId>>) -> AllowDim<KeyTable> {
    AllowDim {
        unrestricted: dim.unrestricted,
        values: table(dim.values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_sorted_lists() {
        assert_eq!(union(&[1, 3, 5], &[2, 3, 6]), [1, 2, 3, 5, 6]);
        assert_eq!(union(&[], &[4]), [4]);
    }
}
