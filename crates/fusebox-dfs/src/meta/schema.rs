//! The metadata schema, one for every SQL engine: the same tables and columns, only the name
//! of the byte-string type differs (`BLOB` in SQLite, `BYTEA` in PostgreSQL).
//!
//! Ids (inode numbers, dentry cookies, slice ids, slice sequence numbers) come from the
//! `counters` table inside the transaction that uses them, not from engine-specific
//! auto-increment columns, so both engines hand them out the same way and never reuse one.

/// Schema version written by `fusebox dfs format` and required at mount.
pub const FORMAT_VERSION: u32 = 3;

/// Marker value of the `format` key: tells our database from a foreign one.
pub const FORMAT_MAGIC: &str = "fusebox-dfs";

/// Names of all tables, in creation order.
pub const TABLES: &[&str] = &[
    "fb_format",
    "counters",
    "inodes",
    "dentries",
    "xattrs",
    "symlinks",
    "chunk_slices",
    "sessions",
    "locks",
    "changes",
    "sustained",
];

/// The SQL dialect the schema is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

const DDL: &str = "
CREATE TABLE fb_format (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE inodes (
    ino BIGINT PRIMARY KEY,
    mode BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    gid BIGINT NOT NULL,
    rdev BIGINT NOT NULL,
    size BIGINT NOT NULL,
    atime_ns BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    ctime_ns BIGINT NOT NULL,
    nlink BIGINT NOT NULL,
    version BIGINT NOT NULL,
    generation BIGINT NOT NULL
);
CREATE TABLE dentries (
    cookie BIGINT PRIMARY KEY,
    parent BIGINT NOT NULL,
    name {BYTES} NOT NULL,
    ino BIGINT NOT NULL,
    UNIQUE (parent, name)
);
CREATE INDEX dentries_by_ino ON dentries (ino);
CREATE TABLE xattrs (
    ino BIGINT NOT NULL,
    name {BYTES} NOT NULL,
    value {BYTES} NOT NULL,
    PRIMARY KEY (ino, name)
);
CREATE TABLE symlinks (
    ino BIGINT PRIMARY KEY,
    target {BYTES} NOT NULL
);
CREATE TABLE chunk_slices (
    seq BIGINT PRIMARY KEY,
    ino BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    slice_id BIGINT NOT NULL,
    slice_size BIGINT NOT NULL,
    off BIGINT NOT NULL,
    len BIGINT NOT NULL
);
CREATE INDEX chunk_slices_by_file ON chunk_slices (ino, chunk, seq);
CREATE TABLE sessions (
    sid BIGINT PRIMARY KEY,
    info TEXT NOT NULL,
    heartbeat_ns BIGINT NOT NULL
);
CREATE TABLE locks (
    ino BIGINT NOT NULL,
    sid BIGINT NOT NULL,
    owner BIGINT NOT NULL,
    flock BIGINT NOT NULL,
    typ BIGINT NOT NULL,
    start_off BIGINT NOT NULL,
    end_off BIGINT NOT NULL,
    pid BIGINT NOT NULL,
    fh BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ino, sid, owner, flock, start_off)
);
";

/// Tables added by format version 2: the change log other mounts follow (`kind`: see
/// `meta::coord::Change`; `ino` is the directory for an entry change, whose `name` is set)
/// and the inodes a session keeps alive after their last name went.
const DDL_V2: &str = "
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY,
    sid BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    ino BIGINT NOT NULL,
    name {BYTES} NOT NULL,
    at_ns BIGINT NOT NULL
);
CREATE TABLE sustained (
    sid BIGINT NOT NULL,
    ino BIGINT NOT NULL,
    PRIMARY KEY (sid, ino)
);
";

/// Added by format version 3: the bytes of a small slice kept in its row (`data`, NULL for a
/// slice stored as block objects), so a small file's commit is one transaction, no object PUT.
const DDL_V3: &str = "
ALTER TABLE chunk_slices ADD COLUMN data {BYTES};
{STORAGE}";

/// Upgrades of an older format, in order: (the version they upgrade, the statements).
pub fn migrations(dialect: Dialect) -> Vec<(u32, String)> {
    let v2 = format!(
        "{}ALTER TABLE locks ADD COLUMN fh BIGINT NOT NULL DEFAULT 0;
         INSERT INTO counters (name, value) VALUES ('next_change', 1);
         INSERT INTO counters (name, value) VALUES ('next_sid', 1);",
        bytes_type(DDL_V2, dialect)
    );
    vec![(1, v2), (2, bytes_type(DDL_V3, dialect))]
}

/// PostgreSQL only: a slice's kept bytes are stored out of line uncompressed (file data rarely
/// compresses, and trying cost a small file's commit more than storing).
const PG_SLICE_DATA_STORAGE: &str = "ALTER TABLE chunk_slices ALTER COLUMN data SET STORAGE EXTERNAL;\n";

fn bytes_type(ddl: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => ddl.replace("{BYTES}", "BLOB"),
        Dialect::Postgres => ddl.replace("{BYTES}", "BYTEA").replace("{STORAGE}", PG_SLICE_DATA_STORAGE),
    }
    .replace("{STORAGE}", "")
}

/// The statements that create the schema in `dialect`.
pub fn ddl(dialect: Dialect) -> String {
    bytes_type(&format!("{DDL}{DDL_V2}{DDL_V3}"), dialect)
}

/// Counters and their first values: inode 1 is the root, cookies 1 and 2 are "." and "..".
pub const COUNTERS: &[(&str, i64)] = &[
    ("next_ino", 2),
    ("next_cookie", 3),
    ("next_seq", 1),
    ("next_slice", 1),
    ("next_change", 1),
    ("next_sid", 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_created_and_only_the_byte_type_differs() {
        let (s, p) = (ddl(Dialect::Sqlite), ddl(Dialect::Postgres));
        for t in TABLES {
            assert!(s.contains(&format!("CREATE TABLE {t} (")), "{t}");
        }
        assert!(!s.contains("{BYTES}") && !p.contains("{BYTES}"));
        assert_eq!(s.replace("BLOB", "BYTEA"), p.replace(PG_SLICE_DATA_STORAGE, ""));
    }
}
