//! `fusebox dfs format|fsck|gc` and `fusebox mount dfs` through the binary: what users see on
//! success and on every bad input (one line on stderr, exit code 1, nothing changed).

mod support;
#[path = "../../fusebox-dfs/src/testing/mod.rs"]
mod testing;

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};
use support::*;

fn run(args: &[&str]) -> Output {
    fusebox().args(args).stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with exit code 1 and a single line on stderr containing `needle`.
fn fails_with(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line expected: {e}");
    assert!(e.contains(needle), "'{needle}' not in: {e}");
}

fn url(scheme: &str, p: &Path) -> String {
    format!("{scheme}://{}", p.display())
}

#[test]
fn format_refuses_non_empty_databases_and_reports_bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blocks) = (url("sqlite", &dir.path().join("m.db")), url("file", &dir.path().join("b")));
    let o = run(&["dfs", "format", &db, "--storage", &blocks]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("b").is_dir(), "format creates the block directory");
    fails_with(&run(&["dfs", "format", &db, "--storage", &blocks]), "use --force");
    assert!(run(&["dfs", "format", &db, "--storage", &blocks, "--force"]).status.success());
    fails_with(&run(&["dfs", "format", "sqlite://host/m.db", "--storage", &blocks]), "three slashes");
    fails_with(&run(&["dfs", "format", "mysql:///m.db", "--storage", &blocks]), "unsupported scheme");
    fails_with(&run(&["dfs", "format", &db, "--storage", "http://x/y"]), "unsupported scheme 'http'");
    fails_with(
        &run(&["dfs", "format", "sqlite:///nonexistent-dir/m.db", "--storage", &blocks]),
        "does not exist",
    );
    // fsck and gc on a fresh file system.
    let o = run(&["dfs", "fsck", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 referenced blocks, 0 missing"));
    let o = run(&["dfs", "gc", &db, "--grace", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("deleted 0 unreferenced blocks"));
    // Bad mount options of a usable file system: one line, nothing mounted.
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.to_str().unwrap();
    for (opt, why) in [
        ("cache_all=maybe", "expected no value (or on/off)"),
        ("session_timeout=0", "expected seconds between 0.5 and 3600"),
        ("colour=blue", "colour"),
    ] {
        fails_with(&run(&["mount", "dfs", &db, mnt, "-o", opt]), why);
    }
    assert!(!fusebox::session::is_mount_point(Path::new(mnt)));
}

#[test]
fn unusable_databases_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.to_str().unwrap();
    let missing = url("sqlite", &dir.path().join("missing.db"));
    fails_with(&run(&["mount", "dfs", &missing, mnt]), "does not exist");
    fails_with(&run(&["dfs", "fsck", &missing]), "does not exist");
    let junk = dir.path().join("junk.db");
    fs::write(&junk, vec![7u8; 4096]).unwrap();
    fails_with(&run(&["mount", "dfs", &url("sqlite", &junk), mnt]), "not a usable SQLite database");
    let empty = dir.path().join("empty.db");
    fs::write(&empty, b"").unwrap();
    fails_with(&run(&["mount", "dfs", &url("sqlite", &empty), mnt]), "not formatted");
    fails_with(&run(&["dfs", "gc", &url("sqlite", &empty)]), "not formatted");
    // A bad command line is clap's usage error: exit code 2, the value and the flag named.
    let o = run(&["dfs", "gc", &url("sqlite", &empty), "--grace", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: invalid value 'soon' for '--grace <SECS>'"), "{}", stderr(&o));
    // PostgreSQL that nobody serves: one line, within the connect timeout, no password shown.
    let unreachable = "postgres://fb:hunter2@127.0.0.1:1/fb";
    for args in [&["mount", "dfs", unreachable, mnt][..], &["dfs", "fsck", unreachable]] {
        let o = run(args);
        fails_with(&o, "cannot connect to postgres://fb:***@127.0.0.1:1/fb");
        assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));
    }
    fails_with(
        &run(&["dfs", "format", "postgres:///fb", "--storage", "file:///tmp/x"]),
        "expected postgres://",
    );
    assert!(!fusebox::session::is_mount_point(Path::new(mnt)));
}

#[test]
fn mount_write_umount_then_fsck_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    mount_write_umount_then_fsck_and_gc_on(&dir, &url("sqlite", &dir.path().join("m.db")));
}

#[test]
fn mount_write_umount_then_fsck_and_gc_postgres() {
    let Some(server) = testing::pg_server::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    mount_write_umount_then_fsck_and_gc_on(&dir, &server.new_database());
}

fn mount_write_umount_then_fsck_and_gc_on(dir: &tempfile::TempDir, db: &str) {
    fusebox_testkit::skip_unless!();
    let (db, blocks) = (db.to_string(), url("file", &dir.path().join("b")));
    assert!(run(&["dfs", "format", &db, "--storage", &blocks]).status.success());
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let cache = format!("cache_dir={}", dir.path().join("cache").display());
    let o = run(&["mount", "dfs", &db, mnt.to_str().unwrap(), "-o", &cache]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The mount is a session: `dfs status` lists it (pid, mountpoint) with its heartbeat.
    let o = run(&["dfs", "status", &db]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && out.starts_with("1 session(s)"), "{out}{}", stderr(&o));
    assert!(out.contains(mnt.to_str().unwrap()), "{out}");
    let data: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(mnt.join("f"), &data).unwrap();
    fs::write(mnt.join("g"), b"short").unwrap();
    fs::remove_file(mnt.join("g")).unwrap();
    // A log appended in five sessions: five slices of one chunk, for compaction below.
    for i in 0..5 {
        use std::io::Write;
        let mut log = fs::OpenOptions::new().create(true).append(true).open(mnt.join("log")).unwrap();
        writeln!(log, "record {i}").unwrap();
    }
    assert!(run(&["umount", mnt.to_str().unwrap()]).status.success());
    assert!(wait_until(std::time::Duration::from_secs(10), || !fusebox::session::is_mount_point(&mnt)));
    // Unmounted, the session is closed.
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        String::from_utf8_lossy(&run(&["dfs", "status", &db]).stdout).starts_with("0 session(s)")
    }));
    let o = run(&["dfs", "fsck", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(" 0 missing, 0 with a wrong size"), "{out}");
    // --grace 0 removes every unreferenced block (the unlinked file's, if its FORGET came);
    // afterwards fsck finds none, and the default grace would have kept them.
    let o = run(&["dfs", "gc", &db, "--grace", "0"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("kept 0 younger"), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&run(&["dfs", "fsck", &db]).stdout).into_owned();
    assert!(out.contains(" 0 unreferenced"), "{out}");
    // Compaction merges the log's five slices into one (f's whole blocks and its tail stay as
    // they are: merging them would rewrite f for nothing); what it replaced is garbage that gc
    // removes; nothing goes missing.
    let o = run(&["dfs", "compact", &db]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && out.starts_with("merged "), "{out}{}", stderr(&o));
    let numbers: Vec<u64> = out.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    let (chunks, before, after) = (numbers[0], numbers[1], numbers[2]);
    assert_eq!((chunks, before, after), (1, 5, 1), "{out}");
    assert!(run(&["dfs", "gc", &db, "--grace", "0"]).status.success());
    let out = String::from_utf8_lossy(&run(&["dfs", "fsck", &db]).stdout).into_owned();
    assert!(out.contains(" 0 missing, 0 with a wrong size") && out.contains(" 0 unreferenced"), "{out}");
    // A removed block object is an fsck error (exit 1).
    let victim = fs::read_dir(dir.path().join("b/blocks")).unwrap().next().unwrap().unwrap().path();
    let file = fs::read_dir(&victim).unwrap().next().unwrap().unwrap().path();
    fs::remove_file(file).unwrap();
    let o = run(&["dfs", "fsck", &db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("missing: blocks/"));
    // The file system mounts again and shows the file (reads of the lost block fail with EIO).
    let o = run(&["mount", "dfs", &db, mnt.to_str().unwrap(), "-o", &cache]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::metadata(mnt.join("f")).unwrap().len(), data.len() as u64);
    assert!(!mnt.join("g").exists());
    let log: String = (0..5).map(|i| format!("record {i}\n")).collect();
    if let Ok(text) = fs::read_to_string(mnt.join("log")) {
        // (unless the block fsck was shown losing was the log's)
        assert_eq!(text, log);
    }
    assert!(run(&["umount", mnt.to_str().unwrap()]).status.success());
}
