//! META_URL parsing and opening: `sqlite:///absolute/path/meta.db` or
//! `postgres://user@host:port/database` (also `postgresql://`).

use crate::error::{MetaError, UrlError};
use crate::meta::postgres::PostgresMeta;
use crate::meta::sqlite::SqliteMeta;
use crate::meta::{Caller, MetaStore};
use std::path::PathBuf;
use std::sync::Arc;

/// `url` without its password, in the user part or the query (for messages and logs).
pub fn redact(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return if url.contains('@') || url.contains("password") {
            "<unparsable URL>".into()
        } else {
            url.into()
        };
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A parsed metadata URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaUrl {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL as given: the client parses it).
    Postgres(String),
}

/// Parse a META_URL.
pub fn parse_meta_url(url: &str) -> Result<MetaUrl, UrlError> {
    let err = |reason: &str| UrlError { what: "metadata", url: redact(url), reason: reason.to_string() };
    let parsed = url::Url::parse(url).map_err(|e| err(&e.to_string()))?;
    match parsed.scheme() {
        "sqlite" => {
            if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(err("expected sqlite:///absolute/path/meta.db (three slashes)"));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(err("query strings and fragments are not supported"));
            }
            let path = url::Url::parse(&format!("file://{}", parsed.path()))
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| err("not an absolute path"))?;
            if path.as_os_str().len() <= 1 || parsed.path().ends_with('/') {
                return Err(err("the path must name a database file"));
            }
            Ok(MetaUrl::Sqlite(path))
        }
        "postgres" | "postgresql" => {
            if parsed.host_str().is_none_or(|h| h.is_empty()) {
                return Err(err("expected postgres://user@host:port/database"));
            }
            Ok(MetaUrl::Postgres(url.to_string()))
        }
        other => Err(err(&format!("unsupported scheme '{other}' (expected sqlite or postgres)"))),
    }
}

/// An error opening or formatting the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is malformed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The database could not be opened or is not usable.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Open the formatted metadata store at `url`.
pub fn open_meta(url: &str) -> Result<Arc<dyn MetaStore>, OpenError> {
    match parse_meta_url(url)? {
        MetaUrl::Sqlite(path) => Ok(Arc::new(SqliteMeta::open(&path)?)),
        MetaUrl::Postgres(url) => Ok(Arc::new(PostgresMeta::open_url(&url)?)),
    }
}

/// Format the metadata store at `url` for blocks at `storage_url`, root owned by `root`.
pub fn format_meta(
    url: &str, storage_url: &str, force: bool, root: Caller,
) -> Result<Arc<dyn MetaStore>, OpenError> {
    match parse_meta_url(url)? {
        MetaUrl::Sqlite(path) => {
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() && !dir.is_dir() {
                    return Err(
                        MetaError::Format(format!("directory {} does not exist", dir.display())).into()
                    );
                }
            }
            Ok(Arc::new(SqliteMeta::format(&path, storage_url, force, root)?))
        }
        MetaUrl::Postgres(url) => Ok(Arc::new(PostgresMeta::format_url(&url, storage_url, force, root)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("postgres://u:secret@127.0.0.1:5432/db"), "postgres://u:***@127.0.0.1:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert!(!redact("postgres://u:secret@[bad").contains("secret"));
        assert_eq!(redact("postgres://h/db?user=u&password=secret"), "postgres://h/db?user=u&password=***");
    }

    #[test]
    fn meta_urls() {
        assert_eq!(
            parse_meta_url("sqlite:///var/lib/m.db").unwrap(),
            MetaUrl::Sqlite("/var/lib/m.db".into())
        );
        assert_eq!(
            parse_meta_url("postgres://u@127.0.0.1:5432/fb").unwrap(),
            MetaUrl::Postgres("postgres://u@127.0.0.1:5432/fb".into())
        );
        let e = parse_meta_url("postgres:///fb?password=hunter2").unwrap_err().to_string();
        assert!(e.contains("host") && !e.contains("hunter2"), "{e}");
        for bad in [
            "",
            "m.db",
            "/var/m.db",
            "sqlite://host/m.db",
            "sqlite:///",
            "sqlite:///dir/",
            "mysql:///x",
            "postgres:///db",
            "sqlite:///m.db?x=1",
        ] {
            assert!(parse_meta_url(bad).is_err(), "{bad}");
        }
    }
}
