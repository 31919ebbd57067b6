//! The fsx engine: random operations on one file, each checked against an in-memory model.
//!
//! Reproducible: every choice comes from a `StdRng` seeded with `seed`, and none depends on what
//! the file system returns (except a kind being disabled after EOPNOTSUPP, which is itself
//! deterministic for a given file system).

use fusebox::sys::SharedMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustix::fs::FallocateFlags;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

/// Largest file the run lets the model grow to.
pub const MAX_FILE: u64 = 1 << 20;
/// Largest single transfer (write, read, copy, mmap range).
pub const MAX_OP: u64 = 256 << 10;
/// How many op descriptions the failure report shows.
const LOG_RING: usize = 50;

/// Tunables of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// RNG seed.
    pub seed: u64,
    /// Number of operations.
    pub ops: u64,
    /// Print every operation (FSX_LOG=1).
    pub log: bool,
    /// Full-file compare every this many ops.
    pub full_every: u64,
}

impl Config {
    /// From the environment: FSX_SEED (default: time), FSX_OPS (default `default_ops`), FSX_LOG,
    /// FSX_FULL_EVERY (default 500).
    pub fn from_env(default_ops: u64) -> Config {
        let seed = std::env::var("FSX_SEED").ok().map(|s| parse_u64(&s, "FSX_SEED")).unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
        });
        let ops = std::env::var("FSX_OPS").ok().map(|s| parse_u64(&s, "FSX_OPS")).unwrap_or(default_ops);
        let full_every = std::env::var("FSX_FULL_EVERY")
            .ok()
            .map(|s| parse_u64(&s, "FSX_FULL_EVERY"))
            .unwrap_or(500)
            .max(1);
        let log = std::env::var("FSX_LOG").is_ok_and(|v| v != "0" && !v.is_empty());
        Config { seed, ops, log, full_every }
    }
}

fn parse_u64(s: &str, what: &str) -> u64 {
    let s = s.trim();
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.replace('_', "").parse(),
    };
    r.unwrap_or_else(|_| panic!("{what}={s:?} is not a number"))
}

/// The operation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// pwrite of random data at a random offset.
    Write,
    /// pread, compared with the model.
    Read,
    /// ftruncate to a random size.
    Truncate,
    /// fallocate that may grow the file.
    Falloc,
    /// fallocate with FALLOC_FL_KEEP_SIZE.
    FallocKeep,
    /// fallocate punching a hole.
    Punch,
    /// Read through a shared mapping.
    MapRead,
    /// Write through a shared mapping, then msync.
    MapWrite,
    /// copy_file_range inside the file.
    CopySame,
    /// copy_file_range through a second file.
    CopyVia,
    /// fsync.
    Fsync,
    /// Close and reopen the file.
    Reopen,
}

/// Relative weights (fsx-like: mostly reads and writes).
const WEIGHTS: &[(Kind, u32)] = &[
    (Kind::Write, 30),
    (Kind::Read, 25),
    (Kind::Truncate, 6),
    (Kind::Falloc, 3),
    (Kind::FallocKeep, 3),
    (Kind::Punch, 4),
    (Kind::MapRead, 7),
    (Kind::MapWrite, 7),
    (Kind::CopySame, 5),
    (Kind::CopyVia, 3),
    (Kind::Fsync, 3),
    (Kind::Reopen, 3),
];

/// What a finished run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Ops executed, per kind (in WEIGHTS order).
    pub counts: Vec<(Kind, u64)>,
    /// Kinds the file system does not support (EOPNOTSUPP), skipped for the rest of the run.
    pub unsupported: Vec<Kind>,
    /// Full-file compares done.
    pub full_checks: u64,
    /// Wall time.
    pub secs: f64,
}

/// One run on `path` (created/truncated), with `path2` as the scratch file for copies via a
/// second file.
pub struct Fsx {
    cfg: Config,
    name: String,
    path: PathBuf,
    path2: PathBuf,
    file: Option<File>,
    model: Vec<u8>,
    rng: StdRng,
    op: u64,
    ring: VecDeque<String>,
    disabled: Vec<Kind>,
    counts: Vec<u64>,
    full_checks: u64,
}

fn open_rw(p: &std::path::Path, create: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(create).truncate(create).open(p)
}

impl Fsx {
    /// Prepare a run (creates both files empty).
    pub fn new(name: &str, path: PathBuf, path2: PathBuf, cfg: Config) -> Fsx {
        let file = open_rw(&path, true).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        open_rw(&path2, true).unwrap_or_else(|e| panic!("create {}: {e}", path2.display()));
        let rng = StdRng::seed_from_u64(cfg.seed);
        Fsx {
            name: name.into(),
            path,
            path2,
            file: Some(file),
            model: Vec::new(),
            rng,
            op: 0,
            ring: VecDeque::with_capacity(LOG_RING + 1),
            disabled: Vec::new(),
            counts: vec![0; WEIGHTS.len()],
            full_checks: 0,
            cfg,
        }
    }

    fn f(&self) -> &File {
        self.file.as_ref().expect("file open")
    }

    /// Run all ops, then a final fsync and full compare.
    pub fn run(mut self) -> (Summary, Vec<u8>) {
        eprintln!(
            "fsx[{}]: seed={} (FSX_SEED={} to reproduce) ops={} full_every={}",
            self.name, self.cfg.seed, self.cfg.seed, self.cfg.ops, self.cfg.full_every
        );
        let start = Instant::now();
        let total: u32 = WEIGHTS.iter().map(|w| w.1).sum();
        while self.op < self.cfg.ops {
            self.op += 1;
            let mut pick = self.rng.gen_range(0..total);
            let mut idx = 0;
            for (i, (_, w)) in WEIGHTS.iter().enumerate() {
                if pick < *w {
                    idx = i;
                    break;
                }
                pick -= w;
            }
            let kind = WEIGHTS[idx].0;
            if self.disabled.contains(&kind) {
                // Still consume the same randomness shape: nothing else; the op is a no-op.
                self.record(format!("{kind:?} skipped (unsupported)"));
                continue;
            }
            self.counts[idx] += 1;
            self.step(kind);
            self.check_size("after op");
            if self.op.is_multiple_of(self.cfg.full_every) {
                self.full_check("periodic full compare");
            }
        }
        self.f().sync_all().unwrap_or_else(|e| self.fail_io("final fsync", e));
        self.full_check("final full compare");
        let summary = Summary {
            counts: WEIGHTS.iter().map(|w| w.0).zip(self.counts.iter().copied()).collect(),
            unsupported: self.disabled.clone(),
            full_checks: self.full_checks,
            secs: start.elapsed().as_secs_f64(),
        };
        eprintln!(
            "fsx[{}]: seed={} PASS {} ops in {:.1}s, {} full compares, unsupported: {:?}\n  {:?}",
            self.name,
            self.cfg.seed,
            self.cfg.ops,
            summary.secs,
            summary.full_checks,
            summary.unsupported,
            summary.counts
        );
        (summary, std::mem::take(&mut self.model))
    }

    fn record(&mut self, s: String) {
        if self.cfg.log {
            eprintln!("fsx[{}] {:>8} {s}", self.name, self.op);
        }
        if self.ring.len() == LOG_RING {
            self.ring.pop_front();
        }
        self.ring.push_back(format!("{:>8} {s}", self.op));
    }

    /// A transfer length: mostly small, sometimes up to MAX_OP.
    fn len(&mut self) -> u64 {
        let max = match self.rng.gen_range(0..10) {
            0..=4 => 4096,
            5..=7 => 64 << 10,
            _ => MAX_OP,
        };
        self.rng.gen_range(1..=max)
    }

    /// An offset in [0, limit] (limit inclusive), sometimes page-aligned.
    /// A start and length inside a file of `size` bytes for operation `name`; `None` (and a
    /// note in the log) when the file is empty.
    fn range_in_file(&mut self, size: u64, name: &str) -> Option<(u64, u64)> {
        if size == 0 {
            self.record(format!("{name:<8} (empty file, skipped)"));
            return None;
        }
        let start = self.rng.gen_range(0..size);
        Some((start, self.len().min(size - start)))
    }

    fn offset(&mut self, limit: u64) -> u64 {
        let o = self.rng.gen_range(0..=limit);
        if self.rng.gen_ratio(1, 4) {
            o & !4095
        } else {
            o
        }
    }

    fn size(&self) -> u64 {
        self.model.len() as u64
    }

    /// Cheap deterministic data (xorshift seeded from the run's RNG).
    fn data(&mut self, len: usize) -> Vec<u8> {
        crate::random_bytes(self.rng.gen::<u64>(), len)
    }

    fn model_write(&mut self, off: u64, data: &[u8]) {
        let end = off as usize + data.len();
        if self.model.len() < end {
            self.model.resize(end, 0);
        }
        self.model[off as usize..end].copy_from_slice(data);
    }

    fn step(&mut self, kind: Kind) {
        let size = self.size();
        match kind {
            Kind::Write => {
                // Sometimes past EOF (a hole), otherwise inside/at the end.
                let len = self.len().min(MAX_FILE);
                let limit = if self.rng.gen_ratio(1, 5) { MAX_FILE - len } else { size.min(MAX_FILE - len) };
                let off = self.offset(limit);
                let data = self.data(len as usize);
                self.record(format!(
                    "write    {off:#x}..{:#x} ({len}){}",
                    off + len,
                    if off > size { " HOLE" } else { "" }
                ));
                self.f().write_all_at(&data, off).unwrap_or_else(|e| self.fail_io("write", e));
                self.model_write(off, &data);
            }
            Kind::Read => {
                let off = self.offset(size);
                let len = self.len();
                self.record(format!("read     {off:#x}..{:#x} ({len}) size={size:#x}", off + len));
                let got = self.read_at(off, len as usize);
                self.compare(off, &got, "read");
            }
            Kind::Truncate => {
                let new = if self.rng.gen_bool(0.5) {
                    self.rng.gen_range(0..=size)
                } else {
                    self.rng.gen_range(0..=MAX_FILE)
                };
                self.record(format!("truncate {size:#x} -> {new:#x}"));
                self.f().set_len(new).unwrap_or_else(|e| self.fail_io("truncate", e));
                self.model.resize(new as usize, 0);
            }
            Kind::Falloc | Kind::FallocKeep | Kind::Punch => {
                let len = self.len().min(MAX_FILE);
                // Punch mostly inside the file; allocation anywhere below MAX_FILE.
                let limit = if kind == Kind::Punch { size.min(MAX_FILE - len) } else { MAX_FILE - len };
                let off = self.offset(limit);
                let (flags, name) = match kind {
                    Kind::Falloc => (FallocateFlags::empty(), "falloc  "),
                    Kind::FallocKeep => (FallocateFlags::KEEP_SIZE, "fallocK "),
                    _ => (FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, "punch   "),
                };
                self.record(format!("{name} {off:#x}..{:#x} ({len}) size={size:#x}", off + len));
                match rustix::fs::fallocate(self.f(), flags, off, len) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::OPNOTSUPP) => {
                        eprintln!(
                            "fsx[{}]: fallocate {name} returned EOPNOTSUPP at op {}: skipping {kind:?} \
                             for the rest of the run",
                            self.name, self.op
                        );
                        self.disabled.push(kind);
                        return;
                    }
                    Err(e) => self.fail_io("fallocate", e.into()),
                }
                let end = (off + len) as usize;
                match kind {
                    Kind::Falloc => {
                        if self.model.len() < end {
                            self.model.resize(end, 0);
                        }
                    }
                    Kind::FallocKeep => {}
                    _ => {
                        let e = end.min(self.model.len());
                        if (off as usize) < e {
                            self.model[off as usize..e].fill(0);
                        }
                    }
                }
            }
            Kind::MapRead => {
                let Some((off, len)) = self.range_in_file(size, "mapread") else { return };
                self.record(format!("mapread  {off:#x}..{:#x} ({len}) map=[0,{size:#x})", off + len));
                let map = SharedMap::new(self.f().as_fd(), 0, size as usize)
                    .unwrap_or_else(|e| self.fail_io("mmap", e));
                let got = map.as_slice()[off as usize..(off + len) as usize].to_vec();
                drop(map);
                self.compare(off, &got, "mmap read");
            }
            Kind::MapWrite => {
                let Some((off, len)) = self.range_in_file(size, "mapwrite") else { return };
                let data = self.data(len as usize);
                self.record(format!("mapwrite {off:#x}..{:#x} ({len}) map=[0,{size:#x}) +msync", off + len));
                let mut map = SharedMap::new(self.f().as_fd(), 0, size as usize)
                    .unwrap_or_else(|e| self.fail_io("mmap", e));
                map.as_mut_slice()[off as usize..(off + len) as usize].copy_from_slice(&data);
                map.msync().unwrap_or_else(|e| self.fail_io("msync", e));
                drop(map);
                self.model_write(off, &data);
            }
            Kind::CopySame => {
                let Some((src, len)) = self.range_in_file(size, "copy") else { return };
                // A destination not overlapping [src, src+len), below MAX_FILE, possibly past EOF.
                let mut dst = None;
                for _ in 0..8 {
                    let limit = if self.rng.gen_ratio(1, 4) { MAX_FILE - len } else { size };
                    let d = self.offset(limit);
                    if (d + len <= src || d >= src + len) && d + len <= MAX_FILE {
                        dst = Some(d);
                        break;
                    }
                }
                let Some(dst) = dst else {
                    self.record(format!("copy     {src:#x} ({len}): no free destination, skipped"));
                    return;
                };
                self.record(format!(
                    "copy     {src:#x}..{:#x} -> {dst:#x} ({len}) size={size:#x}",
                    src + len
                ));
                let f = self.file.take().unwrap();
                let r = self.copy_range(&f, src, &f, dst, len);
                self.file = Some(f);
                if let Err(e) = r {
                    self.fail_io("copy_file_range", e);
                }
            }
            Kind::CopyVia => {
                if size == 0 {
                    self.record("copyvia  (empty file, skipped)".into());
                    return;
                }
                let src = self.rng.gen_range(0..size);
                let len = self.len().min(size - src);
                let dst = self.offset(size.min(MAX_FILE - len));
                self.record(format!(
                    "copyvia  {src:#x}..{:#x} -> file2 -> {dst:#x} ({len}) size={size:#x}",
                    src + len
                ));
                let f2 = open_rw(&self.path2, true).unwrap_or_else(|e| self.fail_io("open file2", e));
                let f = self.file.take().unwrap();
                let r = (|| {
                    let mut done = 0;
                    while done < len {
                        let n = copy_once(&f, src + done, &f2, done, len - done)?;
                        if n == 0 {
                            return Err(io::Error::other(format!("copy out: 0 bytes at {done}/{len}")));
                        }
                        done += n;
                    }
                    // Check the scratch file holds what we copied out.
                    let mut tmp = vec![0u8; len as usize];
                    f2.read_exact_at(&mut tmp, 0)?;
                    if tmp[..] != self.model[src as usize..(src + len) as usize] {
                        return Err(io::Error::other("file2 contents differ from the copied range"));
                    }
                    let mut done = 0;
                    while done < len {
                        let n = copy_once(&f2, done, &f, dst + done, len - done)?;
                        if n == 0 {
                            return Err(io::Error::other(format!("copy back: 0 bytes at {done}/{len}")));
                        }
                        done += n;
                    }
                    Ok(())
                })();
                self.file = Some(f);
                if let Err(e) = r {
                    self.fail_io("copy via file2", e);
                }
                let bytes = self.model[src as usize..(src + len) as usize].to_vec();
                self.model_write(dst, &bytes);
            }
            Kind::Fsync => {
                self.record("fsync".into());
                self.f().sync_all().unwrap_or_else(|e| self.fail_io("fsync", e));
            }
            Kind::Reopen => {
                self.record("close+reopen".into());
                self.file = None;
                let f = open_rw(&self.path, false).unwrap_or_else(|e| self.fail_io("reopen", e));
                self.file = Some(f);
            }
        }
    }

    /// Copy within one file (or between two), updating the model by what was copied.
    fn copy_range(&mut self, fin: &File, src: u64, fout: &File, dst: u64, len: u64) -> io::Result<()> {
        let mut done = 0;
        let expect = self.model[src as usize..(src + len) as usize].to_vec();
        while done < len {
            let n = copy_once(fin, src + done, fout, dst + done, len - done)?;
            if n == 0 {
                return Err(io::Error::other(format!("copy_file_range copied 0 bytes at {done}/{len}")));
            }
            self.model_write(dst + done, &expect[done as usize..(done + n) as usize]);
            done += n;
        }
        Ok(())
    }

    fn read_at(&self, off: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.f().read_at(&mut buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.fail_io("read", e),
            }
        }
        buf.truncate(got);
        buf
    }

    /// Compare `got` (read at `off`) with the model, including its length (short at EOF).
    fn compare(&self, off: u64, got: &[u8], what: &str) {
        let size = self.model.len();
        let want_end = (off as usize + got.len()).min(size).max(off as usize);
        let want = &self.model[(off as usize).min(size)..want_end];
        if got == want {
            return;
        }
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
        let abs = off as usize + first;
        let lo = first.saturating_sub(16);
        let hi = (first + 16).max(lo);
        let mut msg = format!(
            "{what}: data mismatch at file offset {abs:#x} ({abs}) (read {off:#x}+{} bytes, expected {} bytes, \
             model size {size:#x})\n",
            got.len(),
            want.len()
        );
        let _ = writeln!(msg, "  expected [{:#x}..]: {}", off as usize + lo, hex(want, lo, hi));
        let _ = writeln!(msg, "  actual   [{:#x}..]: {}", off as usize + lo, hex(got, lo, hi));
        if let Some(last) = got.iter().zip(want).rposition(|(a, b)| a != b) {
            let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
            let _ = writeln!(
                msg,
                "  {bad} differing bytes, last at {:#x}; all-zero actual at first diff: {}",
                off as usize + last,
                got[first..(first + 64).min(got.len())].iter().all(|&b| b == 0)
            );
        }
        self.fail(&msg);
    }

    fn check_size(&self, what: &str) {
        let len = self.f().metadata().unwrap_or_else(|e| self.fail_io("fstat", e)).len();
        if len != self.size() {
            self.fail(&format!("{what}: fstat size {len:#x} ({len}) != model size {:#x}", self.size()));
        }
        let plen = std::fs::metadata(&self.path).unwrap_or_else(|e| self.fail_io("stat", e)).len();
        if plen != self.size() {
            self.fail(&format!("{what}: stat(path) size {plen:#x} != model size {:#x}", self.size()));
        }
    }

    fn full_check(&mut self, what: &str) {
        self.full_checks += 1;
        self.check_size(what);
        let got = self.read_at(0, self.model.len() + 4096);
        self.compare(0, &got, what);
    }

    fn fail_io(&self, what: &str, e: io::Error) -> ! {
        self.fail(&format!("{what} failed: {e}"))
    }

    fn fail(&self, msg: &str) -> ! {
        let mut s = format!(
            "\nfsx[{}] FAILED: seed={} (rerun with FSX_SEED={} FSX_OPS={}) at op {}\n{msg}\nlast {} ops:\n",
            self.name,
            self.cfg.seed,
            self.cfg.seed,
            self.op,
            self.op,
            self.ring.len()
        );
        for l in &self.ring {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
        panic!("{s}");
    }
}

fn copy_once(fin: &File, src: u64, fout: &File, dst: u64, len: u64) -> io::Result<u64> {
    let (mut oi, mut oo) = (src, dst);
    loop {
        match rustix::fs::copy_file_range(fin, Some(&mut oi), fout, Some(&mut oo), len as usize) {
            Ok(n) => return Ok(n as u64),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn hex(b: &[u8], lo: usize, hi: usize) -> String {
    let hi = hi.min(b.len());
    if lo >= hi {
        return "(none: short)".into();
    }
    b[lo..hi].iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}
