//! Validation of the single path components the kernel sends.

use fusebox::Errno;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Check that `name` is one plain path component: not empty, no '/', no NUL, not "." or "..".
/// Every operation that creates, removes or renames a name uses this; LOOKUP handles "." and
/// ".." itself before calling it.
pub fn check_name(name: &OsStr) -> Result<(), Errno> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_slashes_dots_and_empty() {
        for bad in ["", ".", "..", "a/b", "/", "../x", "x/", "a\0b"] {
            assert_eq!(check_name(OsStr::new(bad)), Err(Errno::EINVAL), "{bad:?}");
        }
        for good in ["a", "...", ".hidden", "a b", "..x", "x.."] {
            assert_eq!(check_name(OsStr::new(good)), Ok(()), "{good:?}");
        }
    }
}
