//! The PostgreSQL engine, for file systems that several machines mount: a pool of connections
//! (r2d2); write transactions READ COMMITTED that lock the inode rows they change first
//! (`SELECT … FOR UPDATE`, see [`super::store`]), so concurrent writers to one directory
//! queue instead of failing; read transactions REPEATABLE READ READ ONLY (one snapshot); a
//! transaction that still lost to another client's (a detected deadlock) runs again.
//!
//! SERIALIZABLE was tried first: two clients creating files in one directory both update the
//! directory's row, the later one fails, and one client in a tight loop kept winning, so the
//! other ran out of retries.
//!
//! Failures are bounded in time: a connection is waited for at most [`CONNECT_TIMEOUT`], a
//! statement runs at most [`STATEMENT_TIMEOUT`], and a server that stops answering is noticed
//! by the TCP user timeout; the operation then fails (EIO to the caller) and the next one
//! connects again, so the mount works again once the server is back.
//!
//! Credentials come from the URL or from the usual `PGUSER` / `PGPASSWORD` variables; the
//! password never appears in messages ([`crate::url::redact`]).

use super::coord::NOTIFY_CHANNEL;
use super::pg_batch::{Batching, BEGIN_READ, BEGIN_WRITE};
use super::pg_conn::Manager;
use super::schema::Dialect;
use super::sql::{Engine, Tx};
use super::store::SqlMeta;
use super::{Caller, MetaResult};
use crate::error::MetaError;
use crate::url::redact;
use postgres::error::SqlState;
use postgres::{Config, NoTls};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

/// Longest wait for a connection (at mount, and for each operation while the server is down).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a statement may run (lock waits included).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a transaction that lost a serialization conflict is tried again.
const CONFLICT_RETRIES: u32 = 20;

/// How a failed BEGIN's conflict reason starts.
const BEGIN_FAILED: &str = "BEGIN failed";

/// Whether a transaction that ended in conflict `why` after `took`, on try `attempt`, runs
/// again: a serialization failure or deadlock always (up to [`CONFLICT_RETRIES`]); a failed
/// BEGIN only when it failed fast (a connection a server restart closed fails at once), not
/// after a timeout on a server that hangs, so such an operation fails after one timeout
/// instead of twenty.
fn worth_retrying(why: &str, took: Duration, attempt: u32) -> bool {
    attempt < CONFLICT_RETRIES && (!why.starts_with(BEGIN_FAILED) || took < CONNECT_TIMEOUT)
}
/// Connections kept per mount (metadata operations run on tokio's blocking pool).
const POOL_SIZE: u32 = 16;

/// The metadata store on PostgreSQL.
pub type PostgresMeta = SqlMeta<Postgres>;

/// A PostgreSQL database, as an [`Engine`].
pub struct Postgres {
    /// Always `Some` until `drop`, which takes it to close the connections off the runtime.
    pool: Option<r2d2::Pool<Manager>>,
    name: String,
    /// How to connect (for the listening connection).
    config: Config,
    /// A connection that `LISTEN`s for published changes, made on first use.
    listener: Mutex<Option<postgres::Client>>,
}

impl Drop for Postgres {
    /// The synchronous `postgres` client closes a connection by running its own small tokio
    /// runtime, which panics on a thread that already drives one. The file system's last
    /// reference can go on any thread (a background FORGET task of the async adapter at unmount
    /// is one), so the connections are closed on a thread of their own.
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else { return };
        let listener = self.listener.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        let pool = (pool, listener);
        if tokio::runtime::Handle::try_current().is_err() {
            drop(pool);
            return;
        }
        // The pool waits in a slot, so that it can still be leaked (not dropped here) when no
        // thread can be started.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(pool)));
        let theirs = slot.clone();
        let closer = std::thread::Builder::new()
            .name("fusebox-pg-close".into())
            .spawn(move || drop(theirs.lock().map(|mut p| p.take())));
        match closer {
            Ok(t) => {
                if t.join().is_err() {
                    tracing::warn!(db = %self.name, "closing the PostgreSQL connections panicked");
                }
            }
            // The server drops leaked connections when the process exits.
            Err(e) => {
                std::mem::forget(slot.lock().map(|mut p| p.take()));
                tracing::warn!(db = %self.name, "cannot close the PostgreSQL connections: {e}");
            }
        }
    }
}

impl Postgres {
    /// Connect to the database at `url` (`postgres://user@host:port/db`); fails within
    /// [`CONNECT_TIMEOUT`] with the reason when the server cannot be reached or refuses us.
    pub fn connect(url: &str) -> MetaResult<Postgres> {
        let name = redact(url);
        let bad = |why: String| MetaError::Format(format!("{name}: {why}"));
        let mut config = Config::from_str(url).map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_hosts().is_empty() {
            return Err(bad("no host (expected postgres://user@host:port/database)".into()));
        }
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(bad("sslmode=require: TLS connections are not supported yet".into()));
        }
        if config.get_user().is_none() {
            match std::env::var("PGUSER") {
                Ok(u) => config.user(&u),
                Err(_) => return Err(bad("no user in the URL and PGUSER is not set".into())),
            };
        }
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_user_timeout(CONNECT_TIMEOUT * 2)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("fusebox-dfs")
            // Batched statements carry their parameters as literals (pg_batch.rs), quoted for
            // standard-conforming strings.
            .options(&format!(
                "-c statement_timeout={} -c standard_conforming_strings=on -c plan_cache_mode=force_generic_plan",
                STATEMENT_TIMEOUT.as_millis()
            ));
        // One direct attempt first: a missing database or a refused login is reported at once,
        // with the server's reason, instead of after the pool's timeout.
        let probe = config
            .connect(NoTls)
            .map_err(|e| MetaError::Engine(format!("cannot connect to {name}: {}", reason(&e))))?;
        drop(probe);
        let manager = Manager { config: config.clone() };
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| MetaError::Engine(format!("cannot connect to {name}: {e}")))?;
        Ok(Postgres { pool: Some(pool), name, config, listener: Mutex::new(None) })
    }

    fn run<T>(&self, write: bool, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        let mut attempt = 0;
        loop {
            let tried = std::time::Instant::now();
            match self.try_once(write, f) {
                Err(MetaError::Conflict(why)) if worth_retrying(&why, tried.elapsed(), attempt) => {
                    attempt += 1;
                    tracing::debug!(attempt, why, "transaction conflict, running it again");
                    // Back off a little, differently per thread, so two losers do not collide again.
                    let jitter = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos() % 1000);
                    std::thread::sleep(Duration::from_micros(u64::from(attempt * 200 + jitter)));
                }
                other => return other,
            }
        }
    }

    fn try_once<T>(&self, write: bool, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        let pool = self.pool.as_ref().expect("the pool lives until drop");
        let mut conn = pool.get().map_err(|e| MetaError::Engine(format!("{}: {e}", self.name)))?;
        // Connections are not tested when taken from the pool (that cost a round trip per
        // transaction): one the server closed (a restart: "terminating connection due to
        // administrator command", or just closed) fails in the first round trip, before
        // anything ran, so the transaction runs again on another connection (r2d2 drops the
        // broken one). A server that is down fails in `pool.get` above instead, after
        // CONNECT_TIMEOUT.
        Batching::transaction(&mut conn, if write { BEGIN_WRITE } else { BEGIN_READ }).run(f)
    }
}

/// The error of a transaction's first round trip (its BEGIN went with it): a lost connection
/// (closed, refused, terminated by the server) ran nothing, so it is a conflict worth running
/// again (when it failed fast, see [`worth_retrying`]); other errors are what they are.
pub(super) fn first_round_trip_failed(e: postgres::Error, first: bool) -> MetaError {
    let lost = match e.as_db_error() {
        None => true,
        // Connection exceptions (08) and operator intervention (57: shutdown, termination).
        Some(db) => ["08", "57"].iter().any(|class| db.code().code().starts_with(class)),
    };
    if first && lost {
        MetaError::Conflict(format!("{BEGIN_FAILED}: {}", reason(&e)))
    } else {
        e.into()
    }
}

impl Engine for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
    const LOCAL: bool = false;

    fn describe(&self) -> &str {
        &self.name
    }

    fn write<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.run(true, f)
    }

    fn read<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.run(false, f)
    }

    /// On a pooled connection without BEGIN and COMMIT. After a server restart every idle
    /// connection in the pool is closed ("terminating connection due to administrator
    /// command"); a read changes nothing, so it runs again on the next connection (the pool
    /// drops the broken ones) until one works, at most once per pooled connection. Only
    /// failures that come back within [`CONNECT_TIMEOUT`] of the first attempt are run again
    /// (a closed connection fails at once): a statement that timed out on a server that hangs
    /// is not repeated, so the operation fails with EIO after one timeout, not sixteen.
    fn read_one<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        let pool = self.pool.as_ref().expect("the pool lives until drop");
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            let mut conn = pool.get().map_err(|e| MetaError::Engine(format!("{}: {e}", self.name)))?;
            match Batching::autocommit(&mut conn).run(f) {
                Err(e @ (MetaError::Engine(_) | MetaError::Conflict(_)))
                    if attempt <= POOL_SIZE && started.elapsed() < CONNECT_TIMEOUT =>
                {
                    tracing::debug!(error = %e, attempt, "single-statement read failed, running it again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Wait on a connection that `LISTEN`s on [`NOTIFY_CHANNEL`] (made on first use and again
    /// after it broke; while the server is away, a sleep). A notice's payload is the session
    /// that published it: this mount's own do not end the wait.
    fn wait_for_changes(&self, timeout: Duration, own_sid: u64) {
        use postgres::fallible_iterator::FallibleIterator;
        let mut slot = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            match self.config.connect(NoTls) {
                Ok(mut c) => match c.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")) {
                    Ok(()) => *slot = Some(c),
                    Err(e) => tracing::debug!(db = %self.name, "LISTEN failed: {}", reason(&e)),
                },
                Err(e) => tracing::debug!(db = %self.name, "no listening connection: {}", reason(&e)),
            }
        }
        let Some(client) = slot.as_mut() else {
            drop(slot);
            std::thread::sleep(timeout);
            return;
        };
        // Sessionless publishers (maintenance commands) and a sessionless listener: 0.
        let own = (own_sid != 0).then(|| own_sid.to_string());
        let until = std::time::Instant::now() + timeout;
        let broke = loop {
            let mut notes = client.notifications();
            let left = until.saturating_duration_since(std::time::Instant::now());
            let first = notes.timeout_iter(left).next();
            match first {
                Ok(Some(n)) => {
                    // One wake-up is enough for any number of changes: take the rest queued.
                    let mut others = own.as_deref() != Some(n.payload());
                    while let Ok(Some(n)) = notes.iter().next() {
                        others |= own.as_deref() != Some(n.payload());
                    }
                    if others {
                        break None;
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = broke {
            tracing::debug!(db = %self.name, "listening connection broke: {}", reason(&e));
            *slot = None;
            drop(slot);
            std::thread::sleep(timeout);
        }
    }
}

/// What went wrong, in words: the server's message for errors it reported (the client's
/// own text for those is only "db error"), the client's otherwise.
fn reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A statement failed: conflicts with other clients (serialization failures, detected
/// deadlocks) become [`MetaError::Conflict`] (run again), everything else, a unique violation
/// included (the row locks rule it out, so one is a bug to report, not to retry),
/// [`MetaError::Engine`].
impl From<postgres::Error> for MetaError {
    fn from(e: postgres::Error) -> Self {
        let conflict = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::UNIQUE_VIOLATION,
        ];
        match e.code() {
            Some(code) if conflict.contains(code) => MetaError::Conflict(reason(&e)),
            // The one division in the statements: a failed assumption check (store.rs,
            // `create_in_known_dir`).
            Some(&SqlState::DIVISION_BY_ZERO) => MetaError::Changed(reason(&e)),
            _ => MetaError::Engine(reason(&e)),
        }
    }
}

impl SqlMeta<Postgres> {
    /// Create a new file system in the database at `url`; see [`SqlMeta::format_engine`].
    pub fn format_url(url: &str, storage_url: &str, force: bool, root: Caller) -> MetaResult<PostgresMeta> {
        SqlMeta::format_engine(Postgres::connect(url)?, storage_url, force, root)
    }

    /// Open the formatted database at `url`.
    pub fn open_url(url: &str) -> MetaResult<PostgresMeta> {
        SqlMeta::open_engine(Postgres::connect(url)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_named_without_the_password() {
        for (url, why) in [
            ("postgres://u:pw@127.0.0.1:1/db?sslmode=require", "TLS"),
            ("postgres:///db?user=u&password=pw", "no host"),
            ("mysql://u:pw@h/db", "not a PostgreSQL URL"),
        ] {
            let e = Postgres::connect(url).err().expect(url).to_string();
            assert!(e.contains(why) && !e.contains("pw@"), "{url}: {e}");
        }
    }

    #[test]
    fn only_fast_begin_failures_and_real_conflicts_run_again() {
        let fast = Duration::from_millis(2);
        let slow = CONNECT_TIMEOUT * 2;
        let begin = format!("{BEGIN_FAILED}: connection closed");
        assert!(worth_retrying(&begin, fast, 0), "a closed pooled connection");
        assert!(!worth_retrying(&begin, slow, 0), "a BEGIN that timed out on a hung server");
        assert!(worth_retrying("deadlock detected", slow, 0), "a real conflict, however long it took");
        assert!(!worth_retrying("deadlock detected", fast, CONFLICT_RETRIES), "the bound holds");
    }

    #[test]
    fn an_unreachable_server_fails_within_the_connect_timeout() {
        let t = std::time::Instant::now();
        // Port 1 on loopback: nothing listens there.
        let e = Postgres::connect("postgres://u:pw@127.0.0.1:1/db").err().unwrap().to_string();
        assert!(e.contains("cannot connect") && !e.contains(":pw"), "{e}");
        assert!(t.elapsed() < CONNECT_TIMEOUT * 3, "{:?}", t.elapsed());
    }
}
