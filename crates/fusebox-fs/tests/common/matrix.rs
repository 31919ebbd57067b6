//! The configurations every mount-level behaviour is checked on: {memfs, passthrough} ×
//! {/dev/fuse, io_uring} × {sync API, async API} × {write-back on, off}.
#![allow(dead_code)]

use super::pt::PtMount;
use super::uring::with_uring;
use super::TestMount;
use fusebox::fs::asyncfs::{AsyncAdapter, SyncAsAsync};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::sync::Arc;

/// Which file system serves the mount.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fs {
    Memfs,
    Passthrough,
}

/// How requests reach the daemon.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    DevFuse,
    Uring,
}

/// Which API the file system is served through (async: `AsyncAdapter` over `SyncAsAsync`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Api {
    Sync,
    Async,
}

/// One configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Setup {
    pub fs: Fs,
    pub transport: Transport,
    pub api: Api,
    pub writeback: bool,
}

/// A mount of either file system; passthrough keeps its source tree alive.
pub enum Mounted {
    Memfs(TestMount),
    Passthrough(PtMount),
}

impl Mounted {
    /// The mount itself.
    pub fn mount(&self) -> &TestMount {
        match self {
            Mounted::Memfs(m) => m,
            Mounted::Passthrough(p) => &p.m,
        }
    }
}

impl Setup {
    /// The eight synchronous-API configurations (file system × transport × write-back).
    pub fn sync_all() -> Vec<Setup> {
        let mut all = Vec::new();
        for fs in [Fs::Memfs, Fs::Passthrough] {
            for transport in [Transport::DevFuse, Transport::Uring] {
                for writeback in [true, false] {
                    all.push(Setup { fs, transport, api: Api::Sync, writeback });
                }
            }
        }
        all
    }

    /// Mount options for this setup.
    pub fn opts(&self) -> String {
        let mut opts = String::from("default_permissions,allow_other");
        opts += if self.writeback { ",writeback" } else { ",no_writeback" };
        if self.transport == Transport::Uring {
            opts += ",io_uring";
        }
        opts
    }

    /// Mount it; `None` where this machine cannot (no mounting, no FUSE over io_uring).
    pub fn mount(&self) -> Option<Mounted> {
        self.mount_with("")
    }

    /// Mount it with `extra` options too (comma-separated, may be empty).
    pub fn mount_with(&self, extra: &str) -> Option<Mounted> {
        let mut opts = self.opts();
        if !extra.is_empty() {
            opts = format!("{opts},{extra}");
        }
        let m = match self.transport {
            Transport::DevFuse => mount(self.fs, self.api, &opts),
            Transport::Uring => with_uring(|| mount(self.fs, self.api, &opts)),
        }?;
        assert_eq!(m.mount().server().writeback(), self.writeback, "write-back negotiated as asked");
        Some(m)
    }
}

impl Setup {
    /// Unmount a passthrough mount of this setup and mount its source again (None for memfs,
    /// whose files go with the mount).
    pub fn remount(&self, m: Mounted) -> Option<Mounted> {
        let Mounted::Passthrough(pt) = m else { return None };
        let opts = match self.api {
            Api::Sync => self.opts(),
            Api::Async => format!("{},async_api", self.opts()),
        };
        let again = match self.transport {
            Transport::DevFuse => pt.remount(&opts),
            Transport::Uring => with_uring(|| pt.remount(&opts)),
        };
        again.map(Mounted::Passthrough)
    }
}

fn mount(fs: Fs, api: Api, opts: &str) -> Option<Mounted> {
    match (fs, api) {
        (Fs::Memfs, Api::Sync) => {
            TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), opts).map(Mounted::Memfs)
        }
        (Fs::Memfs, Api::Async) => {
            let adapter =
                AsyncAdapter::new(SyncAsAsync::new(MemFs::new(MemFsOptions::default())), Default::default())
                    .expect("runtime");
            TestMount::new(Arc::new(adapter), opts).map(Mounted::Memfs)
        }
        (Fs::Passthrough, Api::Sync) => PtMount::new(opts).map(Mounted::Passthrough),
        (Fs::Passthrough, Api::Async) => PtMount::new(&format!("{opts},async_api")).map(Mounted::Passthrough),
    }
}
