//! `fusebox bench` end to end with tiny files: all four modes and three workloads reported.

use std::process::Command;

fn can_run() -> bool {
    let root = fusebox::sys::geteuid() == 0;
    let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_ok();
    let fio = Command::new("fio").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    let why = match (root, dev, fio) {
        (true, true, true) => return true,
        (false, _, _) => "not root",
        (_, false, _) => "/dev/fuse cannot be opened",
        _ => "fio not found",
    };
    if std::env::var("FUSEBOX_REQUIRE_MOUNT").as_deref() == Ok("1") {
        panic!("bench test required but {why}");
    }
    eprintln!("skipping: {why}");
    false
}

#[test]
fn bench_reports_every_mode_and_workload() {
    if !can_run() {
        return;
    }
    let dir = tempfile::Builder::new().prefix("fusebox-bench-test-").tempdir().unwrap();
    let svg = dir.path().join("chart.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_fusebox"))
        .env_remove("FUSEBOX_DAEMON_CHILD")
        .args(["bench", "--dir"])
        .arg(dir.path())
        .args(["--quick", "--size-mb", "4", "--json", "--plot"])
        .arg(&svg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    assert!(stderr.contains("[12/12] memfs-writeback"), "progress lines: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    for mode in ["native", "passthrough-writethrough", "passthrough-writeback", "memfs-writeback"] {
        for workload in ["seq-write-4k", "seq-read-1m", "rand-write-4k"] {
            let r = rows
                .iter()
                .find(|r| r["mode"] == mode && r["workload"] == workload)
                .unwrap_or_else(|| panic!("{mode} {workload} missing"));
            assert!(r["mb_per_s"].as_f64().unwrap() > 0.0, "{r}");
            if mode != "native" && workload != "seq-read-1m" {
                assert!(r["write_requests"].as_u64().unwrap() > 0, "{r}");
            }
        }
    }
    // Write-through sends one WRITE per 4 KiB write(2).
    let wt = rows
        .iter()
        .find(|r| r["mode"] == "passthrough-writethrough" && r["workload"] == "seq-write-4k")
        .unwrap();
    assert_eq!(wt["avg_write_bytes"].as_f64(), Some(4096.0));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.matches("<rect").count() == 12);
    // Everything the bench made inside --dir is gone, and nothing stays mounted.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only chart.svg left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("fusebox-bench-"), "{mounts}");
}

#[test]
fn bench_rejects_unknown_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_fusebox")).args(["bench", "--frob"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown bench option '--frob'"));
}

#[test]
fn bench_without_fio_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_fusebox"))
        .args(["bench", "--quick"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "fusebox: fio not found: install it (apt-get install fio)\n"
    );
}
