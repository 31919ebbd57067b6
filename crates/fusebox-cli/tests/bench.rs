//! `fusebox bench` end to end with tiny sizes: every workload on every built-in variant and a
//! peer (the fusebox binary itself, run as an external command), reported with ratios, daemon
//! CPU and request counts; a failing peer is reported with its stderr; nothing is left behind.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const URING_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// The bench tests check global state (mounts, enable_uring): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn can_run() -> bool {
    let fio = Command::new("fio").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    fusebox_testkit::can_mount() && fusebox_testkit::needs((!fio).then(|| "fio not found".to_string()))
}

/// True if FUSE over io_uring can be switched on here (the parameter exists and is writable).
fn uring_available() -> bool {
    let Ok(old) = std::fs::read_to_string(URING_PARAM) else { return false };
    std::fs::write(URING_PARAM, old.trim()).is_ok()
}

fn bench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusebox"))
        .env_remove("FUSEBOX_DAEMON_CHILD")
        .args(["bench", "--dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// Nothing the bench made is left: no files in --dir, no mounts, enable_uring as before.
fn assert_clean(dir: &Path, uring_before: &Option<String>) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left in --dir: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("fusebox-bench-"), "{mounts}");
    assert_eq!(&std::fs::read_to_string(URING_PARAM).ok(), uring_before, "enable_uring restored");
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn bench_reports_every_workload_variant_and_peer() {
    fusebox_testkit::skip_unless!(can_run());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // On ext4 (/var/tmp), not tmpfs: the native variant is real storage.
    let dir = tempfile::Builder::new().prefix("fusebox-bench-test-").tempdir_in("/var/tmp").unwrap();
    let uring = uring_available();
    let uring_before = std::fs::read_to_string(URING_PARAM).ok();
    let mut builtins = vec![
        "native",
        "fusebox-passthrough",
        "fusebox-passthrough-wb",
        "fusebox-passthrough-wt",
        "fusebox-memfs",
    ];
    if uring {
        builtins.extend(["fusebox-passthrough-uring", "fusebox-memfs-uring"]);
    } else {
        eprintln!("io_uring variants skipped: {URING_PARAM} cannot be written");
    }
    let variants = builtins.join(",");
    let peer = format!("self-memfs={} mount memfs {{MNT}} -f", env!("CARGO_BIN_EXE_fusebox"));
    let charts = tempfile::tempdir().unwrap();
    let (svg, png) = (charts.path().join("chart.svg"), charts.path().join("chart.png"));
    let out = bench(
        dir.path(),
        &[
            "--plot",
            svg.to_str().unwrap(),
            "--plot",
            png.to_str().unwrap(),
            "--size-mb",
            "2",
            "--files",
            "100",
            "--runs",
            "2",
            "--json",
            "--variants",
            &variants,
            "--peer",
            &peer,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let n_variants = builtins.len() + 1;
    let total = 2 * 6 * n_variants;
    assert!(
        stderr.contains(&format!("[{total}/{total}] run 2/2: f-randread-4k-direct-4jobs on self-memfs")),
        "{stderr}"
    );
    assert!(stderr.contains("[mount] self-memfs:"), "{stderr}");
    // The charts: every non-native variant and workload drawn, as SVG and as PNG.
    assert!(stderr.contains(&format!("[plot] {}", png.display())), "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("self-memfs") && text.contains("f-randread-4k-direct-4jobs"), "{text}");
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["runs"], 2);
    assert_eq!(v["sizes"]["files"], 100);
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6 * n_variants);
    let cell = |w: &str, var: &str| {
        cells
            .iter()
            .find(|c| c["workload"].as_str().unwrap().starts_with(w) && c["variant"] == var)
            .unwrap_or_else(|| panic!("{w} on {var} missing"))
    };
    let mut all: Vec<&str> = builtins.clone();
    all.push("self-memfs");
    for w in ["a-", "b-", "c-", "d-", "e-", "f-"] {
        for var in &all {
            let c = cell(w, var);
            let value = &c["value"];
            assert_eq!(value["runs"].as_array().unwrap().len(), 2, "{c}");
            assert!(f(&value["min"]) > 0.0 && f(&value["min"]) <= f(&value["median"]), "{c}");
            assert!(f(&value["median"]) <= f(&value["max"]), "{c}");
            // Ratios are per round against native, which is 1.0 against itself.
            let ratio = f(&c["ratio"]["median"]);
            assert!(ratio > 0.0, "{c}");
            if *var == "native" {
                assert_eq!(ratio, 1.0);
                assert!(c["daemon_cpu_s"].is_null() && c["requests"].is_null(), "{c}");
            } else {
                assert!(f(&c["daemon_cpu_s"]["median"]) >= 0.0, "{c}");
            }
            if var.starts_with("fusebox-") {
                let r = &c["requests"];
                assert!(f(&r["per_op"]) > 0.0 && r["total"].as_u64().unwrap() > 0, "{c}");
                assert!(!r["by_opcode"].as_array().unwrap().is_empty(), "{c}");
            } else {
                assert!(c["requests"].is_null(), "{c}");
            }
            let phases = c["phases"].as_array().unwrap();
            if w == "e-" {
                let names: Vec<&str> = phases.iter().map(|p| p["phase"].as_str().unwrap()).collect();
                assert_eq!(names, ["create", "stat", "unlink"]);
                for p in phases {
                    assert!(f(&p["value"]["median"]) > 0.0 && f(&p["ratio"]["median"]) > 0.0, "{p}");
                }
                if var.starts_with("fusebox-") {
                    // Every created file is one CREATE; every unlinked one is one UNLINK.
                    let per = |k: usize, op: &str| {
                        phases[k]["requests"]["by_opcode"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|o| o["name"] == op)
                            .map(|o| o["count"].as_u64().unwrap())
                    };
                    assert_eq!(per(0, "CREATE"), Some(100), "{c}");
                    assert_eq!(per(2, "UNLINK"), Some(100), "{c}");
                    assert_eq!(phases[0]["requests"]["ops"], 100);
                }
            } else {
                assert!(phases.is_empty(), "{c}");
            }
        }
    }
    // Write-through sends one 4 KiB WRITE per write(2); the write-back cache merges them;
    // kernel passthrough (the default, granted to root) sends none at all.
    let writes = |var: &str| {
        cell("a-", var)["requests"]["by_opcode"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "WRITE")
            .map(|o| f(&o["per_op"]))
    };
    let (wt, wb) = (writes("fusebox-passthrough-wt").unwrap(), writes("fusebox-passthrough-wb").unwrap());
    assert!(wt >= 0.99, "{wt}");
    assert!(wb < 0.5, "{wb}");
    assert_eq!(writes("fusebox-passthrough"), None);
    // Variants: kinds, daemon CPU over the run, io_uring really used.
    let infos = v["variants"].as_array().unwrap();
    assert_eq!(infos.len(), n_variants);
    assert_eq!(infos[0]["name"], "native");
    let peer_info = infos.iter().find(|i| i["name"] == "self-memfs").unwrap();
    assert_eq!(peer_info["kind"], "peer");
    assert!(peer_info["command"].as_str().unwrap().contains("mount memfs /"), "{peer_info}");
    assert!(f(&peer_info["daemon_cpu_s"]) > 0.0, "{peer_info}");
    for i in infos.iter().filter(|i| i["name"].as_str().unwrap().ends_with("-uring")) {
        assert!(i["uring_requests"].as_u64().unwrap() > 0, "{i}");
    }
    assert_clean(dir.path(), &uring_before);

    // --markdown: three tables (ratios, daemon CPU, requests/op).
    let out = bench(
        dir.path(),
        &["--size-mb", "1", "--files", "20", "--workloads", "e", "--variants", "memfs", "--markdown"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| workload | native | fusebox-memfs |"), "{md}");
    assert!(md.contains("| e-create-stat-unlink: create |"), "{md}");
    assert!(md.contains("| whole run (sum of all jobs) |"), "{md}");
    assert_eq!(md.lines().filter(|l| l.starts_with("| ---")).count(), 3, "{md}");
    assert_clean(dir.path(), &uring_before);
}

#[test]
fn failing_peer_shows_its_stderr_and_cleans_up() {
    fusebox_testkit::skip_unless!(can_run());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new().prefix("fusebox-bench-test-").tempdir_in("/var/tmp").unwrap();
    let uring_before = std::fs::read_to_string(URING_PARAM).ok();
    let out = bench(
        dir.path(),
        &[
            "--size-mb",
            "1",
            "--workloads",
            "a",
            "--variants",
            "memfs",
            "--peer",
            "broken=sh -c 'echo peer-oops >&2; exit 3' {MNT}",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken (pid") && stderr.contains("before mounting"), "{stderr}");
    assert!(stderr.contains("peer-oops"), "{stderr}");
    assert_clean(dir.path(), &uring_before);
}

#[test]
fn bench_rejects_bad_options() {
    for (args, want) in [
        (&["bench", "--frob"][..], "unexpected argument '--frob'"),
        (&["bench", "--peer", "x /bin/true {MNT}"][..], "no '='"),
        (&["bench", "--peer", "x=/bin/true {SRC}"][..], "must contain {MNT}"),
        (&["bench", "--runs", "0"][..], "invalid value '0' for '--runs <N>'"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_fusebox")).args(args).output().unwrap();
        // Bad command lines are usage errors: exit code 2.
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{args:?}");
    }
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
