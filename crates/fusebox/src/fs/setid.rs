//! Which set-id bits a change by an unprivileged caller clears, by the rule of Linux 6.x
//! (`setattr_should_drop_suidgid`): S_ISUID always; S_ISGID when the file is group-executable
//! or when the caller is not in the file's group. The kernel asks a file system to apply it
//! (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID) only for callers
//! without CAP_FSETID.

use super::RequestInfo;

/// The set-id bits of `mode` (a file of group `file_gid`) that a write, truncate or fallocate
/// by `caller` must clear.
pub fn setid_bits_to_clear(mode: u32, file_gid: u32, caller: &RequestInfo) -> u32 {
    let mut bits = mode & libc::S_ISUID;
    if mode & libc::S_ISGID != 0 && (mode & libc::S_IXGRP != 0 || !caller_in_group(caller, file_gid)) {
        bits |= libc::S_ISGID;
    }
    bits
}

/// Whether `caller` has `gid` as its group or one of its supplementary groups (read from
/// /proc; a caller that is gone counts as not in the group, which clears the bit).
pub fn caller_in_group(caller: &RequestInfo, gid: u32) -> bool {
    if caller.gid == gid {
        return true;
    }
    if caller.pid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", caller.pid)) else { return false };
    let member = supplementary_groups(&status).any(|g| g == gid);
    member
}

/// The `Groups:` line of a /proc/PID/status text.
fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .into_iter()
        .flat_map(|l| l.split_whitespace().filter_map(|g| g.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(gid: u32, pid: u32) -> RequestInfo {
        RequestInfo { unique: 1, uid: 1000, gid, pid, umask: 0 }
    }

    #[test]
    fn suid_always_sgid_by_group_exec_or_membership() {
        let member = caller(50, 0);
        let stranger = caller(60, 0);
        assert_eq!(setid_bits_to_clear(0o6755, 50, &member), libc::S_ISUID | libc::S_ISGID);
        assert_eq!(setid_bits_to_clear(0o6745, 50, &member), libc::S_ISUID);
        assert_eq!(setid_bits_to_clear(0o2666, 50, &stranger), libc::S_ISGID);
        assert_eq!(setid_bits_to_clear(0o0777, 50, &stranger), 0);
    }

    #[test]
    fn supplementary_groups_come_from_proc() {
        let status = "Name:\tx\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(supplementary_groups(status).collect::<Vec<_>>(), [4, 24, 27]);
        assert_eq!(supplementary_groups("Name:\tx\n").count(), 0);
        assert!(caller_in_group(&caller(7, 0), 7), "the caller's own group");
        assert!(!caller_in_group(&caller(1, u32::MAX), 2), "a caller that is gone is in no group");
    }
}
