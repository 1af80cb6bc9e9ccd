//! A real PostgreSQL server for the tests: `DEVSY_TEST_POSTGRES` names it
//! (a URL to a database the tests may create databases from; `.ci/run`
//! starts a server and sets it). Each test gets a fresh database, dropped
//! at the end. Without the variable a test says so and, in CI, fails: it
//! never passes silently.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that names the server.
pub const VARIABLE: &str = "DEVSY_TEST_POSTGRES";

/// A database of its own for one test; dropped with it.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// The URL the collector is given.
    pub url: String,
}

/// A fresh database on the test server, or `None` (with a line on stderr)
/// where none is configured outside CI.
pub fn database() -> Option<TestDatabase> {
    let admin = match std::env::var(VARIABLE) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "{VARIABLE} is not set: in CI the PostgreSQL tests need the server \
                 that .ci/run starts"
            );
            eprintln!("skipped: no PostgreSQL ({VARIABLE} is not set; .ci/run sets it)");
            return None;
        }
    };
    Some(TestDatabase::create(&admin, "devsy_test"))
}

/// `admin` with its database replaced by `name`.
pub fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let authority_end = base.find("://").map_or(0, |i| {
        i + 3 + base[i + 3..].find('/').unwrap_or(base.len() - i - 3)
    });
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    url
}

/// `psql` that gives up: 10 s to connect, a minute per statement.
fn bounded(psql: &mut Command) -> &mut Command {
    psql.env("PGCONNECT_TIMEOUT", "10")
        .env("PGOPTIONS", "-c statement_timeout=60000")
}

/// Runs `sql` with psql; its unaligned output, one row per line.
pub fn psql(url: &str, sql: &str) -> String {
    try_psql(url, sql).unwrap_or_else(|e| panic!("{e}"))
}

/// [`psql`], or why it failed.
pub fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let output = bounded(&mut Command::new("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql (the PostgreSQL client): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

impl TestDatabase {
    /// A fresh database named `prefix`, this process and a count, on the
    /// server of `admin` (whose database it is made from); psql's error
    /// fails the caller.
    pub fn create(admin: &str, prefix: &str) -> Self {
        Self::try_create(admin, prefix).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`create`](Self::create), or why it could not (no psql, no right to
    /// create databases, a server without ICU).
    pub fn try_create(admin: &str, prefix: &str) -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        try_psql(
            admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        // Sorting by a language's rules, as many servers do (ICU's English),
        // so that a query that depends on the server's collation shows it.
        try_psql(
            admin,
            &format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            ),
        )?;
        let url = with_database(admin, &name);
        Ok(Self {
            admin: admin.to_string(),
            name,
            url,
        })
    }

    /// Runs `sql` in this database.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Runs `sql` in this database from a psql of its own, in the
    /// background, until it ends or the [`Held`] is dropped.
    pub fn hold(&self, sql: &str) -> Held {
        let child = bounded(&mut Command::new("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run psql (the PostgreSQL client)");
        Held(child)
    }

    /// Rows in `events`.
    pub fn count(&self) -> i64 {
        self.query("SELECT COUNT(*) FROM events")
            .parse()
            .expect("a count")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = bounded(&mut Command::new("psql"))
            .args(["-X", "-q", "-d", &self.admin, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// A psql run in the background: killed, by its id, when dropped.
pub struct Held(std::process::Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
