//! `fusebox bench tool ...`: the harness's helpers for the benchmark scripts, so that every
//! script sets up storage and reads daemon CPU the same way as `fusebox bench`:
//!
//! - `cpu PID`: utime + stime of PID in seconds;
//! - `loop-up DIR SIZE`: a SIZE (e.g. `4G`) ext4 image `DIR/img` on a direct-IO loop device,
//!   mounted at `DIR/ext4`; prints the device and the mountpoint;
//! - `loop-down DIR`: undo `loop-up DIR`.

use crate::storage::LoopExt4;
use crate::system::cpu_seconds;
use anyhow::{bail, Context, Result};
use std::path::Path;

const USAGE: &str = "usage: fusebox bench tool (cpu PID | loop-up DIR SIZE | loop-down DIR)";

/// Run one tool command; what it prints goes to stdout.
pub fn run(args: &[String]) -> Result<String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["cpu", pid] => {
            let pid: u32 = pid.parse().with_context(|| format!("cpu: '{pid}' is not a pid"))?;
            Ok(format!("{:.3}", cpu_seconds(pid).with_context(|| format!("reading /proc/{pid}/stat"))?))
        }
        ["loop-up", dir, size] => {
            let size =
                fusebox::session::parse_bytes("SIZE", size).map_err(|e| anyhow::anyhow!("loop-up: {e}"))?;
            let dir = Path::new(dir);
            let l = LoopExt4::create(&dir.join("img"), size, &dir.join("ext4"))?;
            Ok(format!("{} {}", l.device, l.mountpoint.display()))
        }
        ["loop-down", dir] => {
            let dir = Path::new(dir);
            let errors = LoopExt4::find(&dir.join("img"), &dir.join("ext4"))?.remove();
            if !errors.is_empty() {
                bail!("loop-down: {}", errors.join("; "));
            }
            Ok(String::new())
        }
        _ => bail!("{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn cpu_of_this_process_and_clear_errors() {
        let own = run(&args(&format!("cpu {}", std::process::id()))).unwrap();
        assert!(own.parse::<f64>().unwrap() >= 0.0);
        assert!(run(&args("cpu x")).unwrap_err().to_string().contains("not a pid"));
        assert!(run(&args("frobnicate")).unwrap_err().to_string().contains("usage"));
        assert!(run(&args("loop-up /nonexistent-dir/x 1G")).is_err());
    }
}
