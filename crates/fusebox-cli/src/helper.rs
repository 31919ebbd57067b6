//! `mount.fuse.fusebox` / `mount.fusebox`: the fusebox binary run by mount(8) under a helper's
//! name (a symbolic link), with mount(8)'s helper calling convention:
//!
//! ```text
//! mount.fuse.fusebox SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]
//! ```
//!
//! SPEC names the file system: `memfs`, a dfs metadata URL (`sqlite://…`, `postgres://…`), or
//! a directory to mirror with passthrough. Translated into a `fusebox mount` command line.

use anyhow::{bail, Result};

/// True if the program was started under a mount(8) helper name.
pub fn is_helper_name(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    base.starts_with("mount.") && base.contains("fusebox")
}

/// Options only mount(8), the fstab or systemd act on; a helper receives some of them and
/// `fusebox mount` accepts and ignores them all.
pub fn is_mount8_only(option: &str) -> bool {
    let key = option.split_once('=').map_or(option, |(k, _)| k);
    matches!(
        key,
        "defaults"
            | "auto"
            | "noauto"
            | "nofail"
            | "_netdev"
            | "user"
            | "users"
            | "nouser"
            | "owner"
            | "group"
            | "comment"
            | "relatime"
            | "loop"
    ) || key.starts_with("x-")
}

/// What the helper was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum HelperAction {
    /// Run this `fusebox` command line (without the program name).
    Mount(Vec<String>),
    /// `-f`: mount(8)'s "fake" mode, do nothing.
    Fake,
}

/// Translate a helper command line (without the program name) into a `fusebox` one.
pub fn translate(args: &[String]) -> Result<HelperAction> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut fake = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => match it.next() {
                Some(v) => options.push(v.clone()),
                None => bail!("-o needs a value"),
            },
            // Type and namespace: mount(8) already chose us; namespaces are not supported.
            "-t" => {
                it.next();
            }
            "-N" => bail!("mount namespaces (-N) are not supported by mount.fusebox"),
            s if s.starts_with("-o") && s.len() > 2 => options.push(s[2..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => {
                // Combined single-letter flags: sloppy, fake, no-mtab, verbose.
                for c in s[1..].chars() {
                    match c {
                        'f' => fake = true,
                        's' | 'n' | 'v' => {}
                        other => bail!("unknown mount helper flag '-{other}'"),
                    }
                }
            }
            _ => positional.push(a.clone()),
        }
    }
    let [spec, dir] = positional.as_slice() else {
        bail!(
            "usage: mount.fuse.fusebox SPEC MOUNTPOINT [-o OPTIONS] (SPEC: memfs, a directory or a dfs URL)"
        );
    };
    if fake {
        return Ok(HelperAction::Fake);
    }
    let mut cmd: Vec<String> = vec!["mount".into()];
    if spec == "memfs" {
        cmd.push("memfs".into());
    } else if ["sqlite:", "postgres:", "postgresql:"].iter().any(|p| spec.starts_with(p)) {
        cmd.extend(["dfs".into(), spec.clone()]);
    } else {
        cmd.extend(["passthrough".into(), spec.trim_start_matches("passthrough:").to_string()]);
    }
    cmd.push(dir.clone());
    let mut kept: Vec<&str> =
        options.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty() && !is_mount8_only(o)).collect();
    // /proc/mounts then shows what the fstab says (SPEC, type fuse.fusebox), so `mount -a`
    // recognises its entries as mounted and leaves them alone.
    let has = |kept: &[&str], key: &str| kept.iter().any(|o| o.split('=').next() == Some(key));
    let fsname = format!("fsname={spec}");
    if spec == "memfs" && !has(&kept, "fsname") {
        kept.push(&fsname);
    }
    if !has(&kept, "subtype") {
        kept.push("subtype=fusebox");
    }
    if !kept.is_empty() {
        cmd.extend(["-o".into(), kept.join(",")]);
    }
    Ok(HelperAction::Mount(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<HelperAction> {
        translate(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn mount(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn translates_each_kind_of_spec() {
        assert_eq!(
            t("memfs /mnt/m -o rw,size=1G,_netdev,nofail,x-systemd.automount -t fuse.fusebox").unwrap(),
            HelperAction::Mount(mount("mount memfs /mnt/m -o rw,size=1G,fsname=memfs,subtype=fusebox"))
        );
        assert_eq!(
            t("/srv/src /mnt/p -n").unwrap(),
            HelperAction::Mount(mount("mount passthrough /srv/src /mnt/p -o subtype=fusebox"))
        );
        assert_eq!(
            t("passthrough:/srv/src /mnt/p -o defaults").unwrap(),
            HelperAction::Mount(mount("mount passthrough /srv/src /mnt/p -o subtype=fusebox"))
        );
        assert_eq!(
            t("sqlite:///var/lib/m.db /mnt/d -oallow_other").unwrap(),
            HelperAction::Mount(mount(
                "mount dfs sqlite:///var/lib/m.db /mnt/d -o allow_other,subtype=fusebox"
            ))
        );
        assert_eq!(t("memfs /mnt/m -fv").unwrap(), HelperAction::Fake);
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        assert!(t("memfs").is_err());
        assert!(t("memfs /a /b").is_err());
        assert!(t("memfs /a -o").is_err());
        assert!(t("memfs /a -x").is_err());
        assert!(t("memfs /a -N 1").is_err());
    }

    #[test]
    fn names() {
        assert!(is_helper_name("/sbin/mount.fuse.fusebox"));
        assert!(is_helper_name("mount.fusebox"));
        assert!(!is_helper_name("/usr/bin/fusebox"));
        assert!(is_mount8_only("x-systemd.requires=a.service") && is_mount8_only("comment=hi"));
        assert!(!is_mount8_only("size=1G"));
    }
}
