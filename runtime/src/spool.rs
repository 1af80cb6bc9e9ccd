//! The on-disk spool: batches that could not be delivered in this run wait
//! here for the next one.
//!
//! One directory, `<config dir>/telemetry-spool/`, one file per batch whose
//! name says when it was made and how many events it holds:
//! `<microseconds since the epoch>-<pid>-<seq>-<events>.json`, holding the
//! exact request body. Files are written to a temporary name and renamed
//! into place, so a process killed at any instant leaves either the old or
//! the new state; a temporary file left behind is ignored, and removed once
//! stale. A `retry-after` file keeps the time before which nothing may be
//! sent, across runs.
//!
//! Bounded: at most [`MAX_EVENTS`] events and [`MAX_BYTES`] bytes; past
//! that the oldest batches are dropped (and counted). Batches older than
//! [`MAX_AGE`] are dropped (and counted). A corrupt or truncated batch is
//! removed (and counted), never a crash.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::event::Batch;
use crate::files;

/// The spool directory's name inside the config dir.
pub(crate) const SPOOL_DIR: &str = "telemetry-spool";
/// The most events the spool keeps.
pub(crate) const MAX_EVENTS: usize = 1000;
/// The most bytes the spool keeps.
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;
/// How long a batch may wait.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A temporary file older than this was left by a killed process.
const STALE_TEMP: Duration = Duration::from_secs(600);
/// A batch being sent by a process that is gone, or that has been sending
/// it this long, is taken back into the spool.
const STALE_INFLIGHT: Duration = Duration::from_secs(120);
const INFLIGHT_PREFIX: &str = ".inflight-";
const RETRY_AFTER_FILE: &str = "retry-after";
/// What the last courier did, for a person (or a test) to read.
pub(crate) const COURIER_NOTE: &str = "courier-last";
const LOCK_FILE: &str = ".lock";

/// One batch on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: PathBuf,
    pub created_micros: u64,
    pub events: usize,
    pub bytes: u64,
}

/// What enforcing the limits dropped, in events (corrupt: in files).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub too_old: usize,
    pub spool_full: usize,
    pub corrupt_files: usize,
}

/// The spool of one config dir.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub(crate) fn new(config_dir: &Path) -> Self {
        Self {
            dir: config_dir.join(SPOOL_DIR),
        }
    }

    /// The spool's directory, unless a link was planted in its place: no
    /// method reads, writes, renames or removes anything through one. (The
    /// methods that create it refuse a link in `files::create_private_dir`.)
    fn real_dir(&self) -> Option<&Path> {
        (!files::is_link(&self.dir)).then_some(self.dir.as_path())
    }

    /// Deletes the whole spool: telemetry is off, so nothing an earlier
    /// run left is sent. The one place the spool is deleted (with the rest
    /// of what telemetry keeps, `files::forget`); called where "off" is
    /// seen: at start, by `disable()`, and by a courier before a send.
    /// Missing is fine; a spool that cannot be deleted is left; a link is
    /// removed, not what it points to.
    pub(crate) fn forget(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Writes one batch atomically and returns its entry. `inflight`: the
    /// batch is about to be sent by this process, and other processes leave
    /// it alone until [`publish`](Self::publish) (or until this process is
    /// gone). Limits are not applied here: see [`enforce_limits`](Self::enforce_limits).
    pub(crate) fn write(
        &self,
        body: &[u8],
        events: usize,
        now: SystemTime,
        inflight: bool,
    ) -> io::Result<Entry> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        files::create_private_dir(&self.dir)?;
        let created_micros = micros(now);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("{created_micros:020}-{pid}-{seq}-{events}.json");
        let path = if inflight {
            self.dir.join(format!("{INFLIGHT_PREFIX}{name}"))
        } else {
            self.dir.join(&name)
        };
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or(&name);
        files::write_atomically(&self.dir, file_name, body)?;
        Ok(Entry {
            path,
            created_micros,
            events,
            bytes: body.len() as u64,
        })
    }

    /// Makes an in-flight batch an ordinary one, for any later run to send.
    pub(crate) fn publish(&self, entry: &Entry) -> io::Result<Entry> {
        let Some(name) = entry.path.file_name().and_then(|n| n.to_str()) else {
            return Ok(entry.clone());
        };
        let Some(plain) = name.strip_prefix(INFLIGHT_PREFIX) else {
            return Ok(entry.clone());
        };
        let dir = self
            .real_dir()
            .ok_or_else(|| io::Error::other("the spool is a symbolic link: refused"))?;
        let path = dir.join(plain);
        fs::rename(&entry.path, &path)?;
        Ok(Entry {
            path,
            ..entry.clone()
        })
    }

    /// The spool's lock: the process holding it sends the batches earlier
    /// runs left, so that two runs at once do not send them twice. `None`
    /// when another process holds it, or there is no spool.
    pub(crate) fn lock(&self) -> Option<fs::File> {
        let file = files::open_or_create(&self.real_dir()?.join(LOCK_FILE)).ok()?;
        file.try_lock().ok()?;
        Some(file)
    }

    /// Whether `held` (from [`lock`](Self::lock)) is still this spool's
    /// lock: `false` once the spool was deleted (telemetry was turned off
    /// meanwhile, perhaps on again since, with a new lock).
    pub(crate) fn still_locked_by(&self, held: &fs::File) -> bool {
        let Some(Ok(now)) = self
            .real_dir()
            .map(|dir| fs::symlink_metadata(dir.join(LOCK_FILE)))
        else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            held.metadata()
                .is_ok_and(|held| (held.dev(), held.ino()) == (now.dev(), now.ino()))
        }
        #[cfg(not(unix))]
        {
            let _ = (held, now);
            true
        }
    }

    /// Every batch on disk, oldest first. Names that are not ours are
    /// removed as corrupt; stale temporary files are removed.
    pub(crate) fn entries(&self) -> (Vec<Entry>, usize) {
        let Some(Ok(listing)) = self.real_dir().map(fs::read_dir) else {
            return (Vec::new(), 0);
        };
        let mut entries = Vec::new();
        let mut corrupt = 0;
        for item in listing.flatten() {
            let path = item.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if name == RETRY_AFTER_FILE || name == LOCK_FILE || name == COURIER_NOTE {
                continue;
            }
            let path = match name.strip_prefix(INFLIGHT_PREFIX) {
                // Another process is sending it: leave it, unless that
                // process is gone or took far too long.
                Some(plain) if abandoned(plain, &item) => {
                    let reclaimed = self.dir.join(plain);
                    if fs::rename(&path, &reclaimed).is_err() {
                        continue;
                    }
                    reclaimed
                }
                Some(_) => continue,
                None => path,
            };
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.starts_with('.') {
                let stale = item
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP);
                if stale {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            let bytes = fs::metadata(&path).map_or(0, |m| m.len());
            match parse_name(&name) {
                Some((created_micros, events)) => entries.push(Entry {
                    path,
                    created_micros,
                    events,
                    bytes,
                }),
                None => {
                    let _ = fs::remove_file(&path);
                    corrupt += 1;
                }
            }
        }
        entries.sort_by(|a, b| (a.created_micros, &a.path).cmp(&(b.created_micros, &b.path)));
        (entries, corrupt)
    }

    /// Reads a batch back; a body that does not parse as a batch of the
    /// events its name says is removed, and `None` returned.
    pub(crate) fn read(entry: &Entry) -> Option<Vec<u8>> {
        let body = fs::read(&entry.path).ok()?;
        let valid =
            serde_json::from_slice::<Batch<'_>>(&body).is_ok_and(|b| b.data.len() == entry.events);
        if valid {
            Some(body)
        } else {
            let _ = fs::remove_file(&entry.path);
            None
        }
    }

    pub(crate) fn remove(entry: &Entry) {
        let _ = fs::remove_file(&entry.path);
    }

    /// Drops batches older than [`MAX_AGE`], then the oldest while the
    /// spool holds more than [`MAX_EVENTS`] events or [`MAX_BYTES`] bytes.
    /// `keep` (the batch just written) goes last, if at all. Batches in
    /// flight are not counted: they are this or another process's.
    pub(crate) fn enforce_limits(&self, now: SystemTime, keep: Option<&Entry>) -> Dropped {
        let (entries, corrupt_files) = self.entries();
        let mut dropped = Dropped {
            corrupt_files,
            ..Dropped::default()
        };
        let oldest_allowed = micros(now).saturating_sub(micros_of(MAX_AGE));
        let mut kept = Vec::new();
        for entry in entries {
            if entry.created_micros < oldest_allowed {
                Self::remove(&entry);
                dropped.too_old += entry.events;
            } else {
                kept.push(entry);
            }
        }
        // The new batch is the last to go: move it to the end.
        if let Some(keep) = keep
            && let Some(i) = kept.iter().position(|e| e.path == keep.path)
        {
            let entry = kept.remove(i);
            kept.push(entry);
        }
        let mut events: usize = kept.iter().map(|e| e.events).sum();
        let mut bytes: u64 = kept.iter().map(|e| e.bytes).sum();
        for entry in &kept {
            if events <= MAX_EVENTS && bytes <= MAX_BYTES {
                break;
            }
            Self::remove(entry);
            events -= entry.events;
            bytes -= entry.bytes;
            dropped.spool_full += entry.events;
        }
        dropped
    }

    /// The time before which nothing may be sent, if a server asked.
    pub(crate) fn not_before(&self) -> Option<SystemTime> {
        let text = files::read_to_string(&self.real_dir()?.join(RETRY_AFTER_FILE)).ok()?;
        let micros: u64 = text.trim().parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_micros(micros))
    }

    /// Keeps `until` for later runs (atomically, like a batch).
    pub(crate) fn set_not_before(&self, until: SystemTime) -> io::Result<()> {
        files::create_private_dir(&self.dir)?;
        // Rounded up: never earlier than asked.
        let micros = until
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| micros_of(d + Duration::from_nanos(999)));
        files::write_atomically(&self.dir, RETRY_AFTER_FILE, micros.to_string().as_bytes())
    }

    /// The batches here by their names alone (nothing read, nothing
    /// removed): each one's events, and whether it is in flight.
    fn batch_names(&self) -> impl Iterator<Item = (usize, bool)> {
        self.real_dir()
            .and_then(|dir| fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|item| {
                let name = item.file_name();
                let name = name.to_str()?;
                let plain = name.strip_prefix(INFLIGHT_PREFIX);
                let (_, events) = parse_name(plain.unwrap_or(name))?;
                Some((events, plain.is_some()))
            })
    }

    /// How many events wait here (in flight or not).
    pub(crate) fn waiting_events(&self) -> usize {
        self.batch_names().map(|(events, _)| events).sum()
    }

    /// No batch waits here for any run to send (in flight is not waiting).
    pub(crate) fn is_empty(&self) -> bool {
        !self.batch_names().any(|(_, inflight)| !inflight)
    }

    /// Whether batches can be kept here: the directory exists or can be made.
    pub(crate) fn usable(&self) -> bool {
        files::create_private_dir(&self.dir).is_ok()
    }

    /// Keeps one line about how the last courier ended (atomically; never
    /// creates the spool).
    pub(crate) fn note_courier(&self, line: &str) {
        if let Some(dir) = self.real_dir().filter(|dir| dir.is_dir()) {
            let _ = files::write_atomically(dir, COURIER_NOTE, format!("{line}\n").as_bytes());
        }
    }

    /// Forgets the wait once it has passed.
    pub(crate) fn clear_not_before(&self) {
        if let Some(dir) = self.real_dir() {
            let _ = fs::remove_file(dir.join(RETRY_AFTER_FILE));
        }
    }
}

/// Whether the process that was sending the batch named `plain` is gone
/// (Linux: no `/proc/<pid>`), or has been at it longer than
/// [`STALE_INFLIGHT`].
fn abandoned(plain: &str, item: &fs::DirEntry) -> bool {
    let too_old = item
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_INFLIGHT);
    let pid = plain.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
    let gone = cfg!(target_os = "linux")
        && pid.is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        });
    too_old || gone
}

fn micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, micros_of)
}

fn micros_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// `<created>-<pid>-<seq>-<events>.json` -> `(created, events)`
fn parse_name(name: &str) -> Option<(u64, usize)> {
    let stem = name.strip_suffix(".json")?;
    let mut parts = stem.split('-');
    let created = parts.next()?.parse().ok()?;
    let _pid: u32 = parts.next()?.parse().ok()?;
    let _seq: u64 = parts.next()?.parse().ok()?;
    let events = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((created, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(events: usize) -> Vec<u8> {
        let one = r#"{"event":{"type":"devsy_cli","machine_id":"ab","timestamp":1,"properties":{"command":"devsy x","desktop":"false","version":"v1"}},"user":{"machine_id":"ab","arch":"amd64","os":"linux"}}"#;
        format!("{{\"data\":[{}]}}", vec![one; events].join(",")).into_bytes()
    }

    #[test]
    fn writes_and_reads_back_oldest_first() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        let now = SystemTime::now();
        let first = spool.write(&body(2), 2, now, false)?;
        let second = spool.write(&body(1), 1, now + Duration::from_secs(1), false)?;
        let (entries, corrupt) = spool.entries();
        assert_eq!(corrupt, 0);
        assert_eq!(entries, [first.clone(), second]);
        assert_eq!(Spool::read(&first), Some(body(2)));
        Ok(())
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_removed_not_fatal() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        let entry = spool.write(&body(3), 3, SystemTime::now(), false)?;
        let full = fs::read(&entry.path)?;
        fs::write(&entry.path, &full[..full.len() / 2])?;
        assert_eq!(Spool::read(&entry), None);
        assert!(!entry.path.exists());
        fs::write(spool.dir.join("not-ours.txt"), "x")?;
        let (entries, corrupt) = spool.entries();
        assert!(entries.is_empty());
        assert_eq!(corrupt, 1);
        Ok(())
    }

    #[test]
    fn limits_drop_the_oldest_and_the_too_old() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        let now = SystemTime::now();
        spool.write(&body(1), 1, now - MAX_AGE - Duration::from_secs(60), false)?;
        assert_eq!(spool.enforce_limits(now, None).too_old, 1);
        let mut total = Dropped::default();
        for i in 0..12 {
            let entry = spool.write(&body(100), 100, now + Duration::from_millis(i), false)?;
            total.spool_full += spool.enforce_limits(now, Some(&entry)).spool_full;
        }
        let (entries, _) = spool.entries();
        let kept: usize = entries.iter().map(|e| e.events).sum();
        assert_eq!(kept, MAX_EVENTS);
        assert_eq!(total.spool_full, 200);
        assert_eq!(
            entries[0].created_micros,
            micros(now + Duration::from_millis(2))
        );
        Ok(())
    }

    #[test]
    fn batches_in_flight_are_left_alone_until_published() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        let entry = spool.write(&body(1), 1, SystemTime::now(), true)?;
        assert!(
            spool.entries().0.is_empty(),
            "another run would send it too"
        );
        let published = spool.publish(&entry)?;
        assert_eq!(spool.entries().0, [published]);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_batch_whose_sender_is_gone_is_taken_back() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        fs::create_dir_all(&spool.dir)?;
        // pid 4194304 is above Linux's pid limit: no such process.
        let name = "00000000000000000042-4194304-0-1.json";
        fs::write(spool.dir.join(format!("{INFLIGHT_PREFIX}{name}")), body(1))?;
        let (entries, _) = spool.entries();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].path.ends_with(name));
        Ok(())
    }

    #[test]
    fn one_process_at_a_time_holds_the_lock() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        assert!(spool.lock().is_none(), "no spool, nothing to lock");
        fs::create_dir_all(&spool.dir)?;
        let held = spool.lock();
        assert!(held.is_some());
        assert!(spool.lock().is_none(), "a second holder");
        drop(held);
        assert!(spool.lock().is_some());
        Ok(())
    }

    #[test]
    fn a_lock_whose_spool_was_deleted_is_no_longer_the_spools() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        fs::create_dir_all(&spool.dir)?;
        let held = spool.lock().expect("free");
        assert!(spool.still_locked_by(&held));
        spool.forget();
        assert!(!spool.still_locked_by(&held), "the spool is gone");
        fs::create_dir_all(&spool.dir)?;
        let again = spool.lock().expect("a new lock file is free");
        assert!(spool.still_locked_by(&again));
        assert!(!spool.still_locked_by(&held), "an opt-in made a new spool");
        Ok(())
    }

    #[test]
    fn the_retry_after_time_is_kept() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::new(dir.path());
        assert_eq!(spool.not_before(), None);
        let until = SystemTime::now() + Duration::from_secs(30);
        spool.set_not_before(until)?;
        assert!(spool.not_before().is_some_and(|t| t >= until));
        spool.clear_not_before();
        assert_eq!(spool.not_before(), None);
        Ok(())
    }

    /// A link planted where the spool goes: nothing is read, written or
    /// removed through it, whichever method is called.
    #[cfg(unix)]
    #[test]
    fn a_link_in_the_spools_place_is_never_followed() -> io::Result<()> {
        let home = tempfile::tempdir()?;
        let elsewhere = tempfile::tempdir()?;
        // What a spool would hold, kept where the link points.
        let planted = ["00000000000000000042-7-0-3.json", RETRY_AFTER_FILE, "mine"];
        for name in planted {
            fs::write(elsewhere.path().join(name), "99999999999999999")?;
        }
        std::os::unix::fs::symlink(elsewhere.path(), home.path().join(SPOOL_DIR))?;
        let spool = Spool::new(home.path());
        let now = SystemTime::now();

        assert!(spool.write(&body(1), 1, now, false).is_err());
        assert!(spool.set_not_before(now).is_err());
        assert!(!spool.usable());
        assert!(spool.lock().is_none());
        assert_eq!(spool.entries(), (Vec::new(), 0));
        assert_eq!(spool.waiting_events(), 0);
        assert!(spool.is_empty());
        assert_eq!(spool.not_before(), None);
        assert_eq!(spool.enforce_limits(now, None), Dropped::default());
        spool.note_courier("a courier's line");
        spool.clear_not_before();

        let mut left: Vec<String> = fs::read_dir(elsewhere.path())?
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort_unstable();
        let mut expected = planted.map(String::from).to_vec();
        expected.sort_unstable();
        assert_eq!(left, expected, "only what was planted, untouched");
        for name in planted {
            assert_eq!(
                fs::read_to_string(elsewhere.path().join(name))?,
                "99999999999999999"
            );
        }
        // Opting out removes the link, not what it points to.
        spool.forget();
        assert!(!home.path().join(SPOOL_DIR).exists());
        assert_eq!(fs::read_dir(elsewhere.path())?.count(), planted.len());
        Ok(())
    }

    /// The spool swapped for a link after a batch was written and the lock
    /// taken: the batch is not published through the link, and the lock
    /// is no longer the spool's.
    #[cfg(unix)]
    #[test]
    fn a_spool_swapped_for_a_link_is_not_published_through_nor_still_locked() -> io::Result<()> {
        let home = tempfile::tempdir()?;
        let elsewhere = tempfile::tempdir()?;
        let spool = Spool::new(home.path());
        let entry = spool.write(&body(1), 1, SystemTime::now(), true)?;
        let held = spool.lock().expect("the lock");
        assert!(spool.still_locked_by(&held));
        let moved = elsewhere.path().join("moved");
        fs::rename(home.path().join(SPOOL_DIR), &moved)?;
        std::os::unix::fs::symlink(&moved, home.path().join(SPOOL_DIR))?;

        assert!(!spool.still_locked_by(&held), "the lock is behind a link");
        assert!(spool.publish(&entry).is_err());
        let name = entry.path.file_name().expect("a name");
        assert!(moved.join(name).exists(), "still in flight, where it was");
        Ok(())
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name("00000000000000000042-7-0-3.json"), Some((42, 3)));
        assert_eq!(parse_name("42-7-0-3.txt"), None);
        assert_eq!(parse_name("42-x-0-3.json"), None);
        assert_eq!(parse_name("42-7-0-3-9.json"), None);
    }
}
