//! One inode's extended attributes, with their running charge against the capacity, so that
//! setting an attribute costs O(log n) however many the inode already has.

use super::account;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

/// Extended attributes by name, and the sum of [`account::xattr`] over them.
#[derive(Debug, Default)]
pub struct Xattrs {
    map: BTreeMap<OsString, Vec<u8>>,
    charge: u64,
}

impl Xattrs {
    /// The value of `name`, if set.
    pub fn get(&self, name: &OsStr) -> Option<&Vec<u8>> {
        self.map.get(name)
    }

    /// Whether `name` is set.
    pub fn contains_key(&self, name: &OsStr) -> bool {
        self.map.contains_key(name)
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &OsString> {
        self.map.keys()
    }

    /// Set `name` to `value`, replacing any value it had.
    pub fn insert(&mut self, name: OsString, value: Vec<u8>) {
        self.charge += account::xattr(&name, value.len());
        if let Some(old) = self.map.insert(name.clone(), value) {
            self.charge -= account::xattr(&name, old.len());
        }
    }

    /// Remove `name`, returning its value if it was set.
    pub fn remove(&mut self, name: &OsStr) -> Option<Vec<u8>> {
        let old = self.map.remove(name)?;
        self.charge -= account::xattr(name, old.len());
        Some(old)
    }

    /// What all of them are charged against the capacity.
    pub fn charge(&self) -> u64 {
        self.charge
    }
}

impl Extend<(OsString, Vec<u8>)> for Xattrs {
    fn extend<I: IntoIterator<Item = (OsString, Vec<u8>)>>(&mut self, iter: I) {
        for (name, value) in iter {
            self.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use account::XATTR;

    #[test]
    fn the_charge_follows_inserts_replacements_and_removals() {
        let mut x = Xattrs::default();
        x.insert("user.a".into(), vec![0u8; 100]);
        x.insert("user.bb".into(), vec![]);
        assert_eq!(x.charge(), (6 + 100 + XATTR) + (7 + XATTR));
        x.insert("user.a".into(), vec![1u8; 10]);
        assert_eq!(x.charge(), (6 + 10 + XATTR) + (7 + XATTR));
        assert_eq!(x.remove(OsStr::new("user.bb")), Some(vec![]));
        assert_eq!(x.remove(OsStr::new("user.bb")), None);
        assert_eq!(x.charge(), 6 + 10 + XATTR);
        x.extend([("user.c".into(), vec![2u8; 3])]);
        assert_eq!(x.keys().collect::<Vec<_>>(), ["user.a", "user.c"]);
        assert_eq!(x.charge(), (6 + 10 + XATTR) + (6 + 3 + XATTR));
    }
}
