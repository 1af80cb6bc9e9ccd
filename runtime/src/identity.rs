//! Who is sending: the hashed machine id, and Go's names for the CPU
//! architecture and operating system (the source document's backend speaks Go).

use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

use hmac::{Hmac, KeyInit, Mac};

use crate::files;
use sha2::Sha256;

/// The name of the file, inside the config dir, that keeps a random id on
/// machines that have no OS machine id (many containers).
pub(crate) const FALLBACK_ID_FILE: &str = "telemetry-machine-id";

/// The `machine_id` of every event: lowercase hex of HMAC-SHA256 keyed with
/// the raw machine id, over the app name.
///
/// Stable for one app on one machine, unlinkable across apps, and never the
/// raw id. Where the OS has no id, a random one is made once and kept in
/// `config_dir`; if even that fails, a random id serves this process only,
/// which is still better than sending anything identifying.
///
/// This reads files and may write one, so the worker thread calls it, never
/// the caller's thread.
pub(crate) fn machine_id(app: &str, config_dir: Option<&Path>) -> String {
    let raw = match os_machine_id() {
        Some(id) => id.as_bytes().to_vec(),
        None => config_dir
            .and_then(|dir| fallback_id(dir).ok())
            .unwrap_or_else(random_id),
    };
    id_of(&raw, app)
}

/// The id `app` sends from the machine whose raw id is `raw`. Changing
/// this changes every id already sent: a test pins it.
fn id_of(raw: &[u8], app: &str) -> String {
    hmac_sha256_hex(raw, app.as_bytes())
}

/// The OS machine id, read once per process.
fn os_machine_id() -> Option<&'static str> {
    static OS_ID: OnceLock<Option<String>> = OnceLock::new();
    OS_ID
        .get_or_init(|| {
            machine_uid::get()
                .ok()
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty())
        })
        .as_deref()
}

/// Lowercase hex of HMAC-SHA256(key, message).
pub(crate) fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn random_id() -> Vec<u8> {
    let mut bytes = [0_u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness at all: an id made of the process id and the time
        // is unique enough to de-duplicate this run, and says nothing about
        // the user.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{}-{nanos}", std::process::id());
        return seed.into_bytes();
    }
    hex(&bytes).into_bytes()
}

/// Telemetry was turned off: the kept random id goes, so that opting in
/// again links nothing to the events sent before.
pub(crate) fn forget(dir: &Path) {
    let _ = fs::remove_file(dir.join(FALLBACK_ID_FILE));
}

/// Reads the kept random id, or creates it. Creation is atomic and
/// first-writer-wins: the id is written to a temporary file and hard-linked
/// into place, so two processes racing agree on one id and nobody ever reads
/// a half-written file.
fn fallback_id(dir: &Path) -> io::Result<Vec<u8>> {
    let path = dir.join(FALLBACK_ID_FILE);
    if let Some(id) = read_id(&path)? {
        return Ok(id);
    }
    files::create_dir_all(dir)?;
    let id = random_id();
    let linked = files::write_then_place(dir, FALLBACK_ID_FILE, &id, |tmp, file| {
        file.sync_all()?;
        fs::hard_link(tmp, &path)
    });
    match linked {
        Ok(()) => Ok(id),
        // Somebody else won the race: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_id(&path)?.ok_or_else(|| io::Error::other("machine id file is empty"))
        }
        Err(e) => Err(e),
    }
}

fn read_id(path: &Path) -> io::Result<Option<Vec<u8>>> {
    // Never through a link: a planted one would choose the key.
    match files::read_private(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().as_bytes().to_vec())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Go's `GOARCH` for this build.
pub(crate) fn arch() -> &'static str {
    go_arch(std::env::consts::ARCH, cfg!(target_endian = "little"))
}

/// Go's `GOOS` for this build.
pub(crate) fn os() -> &'static str {
    go_os(std::env::consts::OS)
}

/// Maps Rust's `target_arch` to Go's `GOARCH`; unknown names pass through.
pub(crate) fn go_arch(rust: &'static str, little_endian: bool) -> &'static str {
    match (rust, little_endian) {
        ("x86_64", _) => "amd64",
        ("x86", _) => "386",
        ("aarch64", true) => "arm64",
        ("aarch64", false) => "arm64be",
        ("arm", _) => "arm",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("powerpc", _) => "ppc",
        ("mips", true) => "mipsle",
        ("mips", false) => "mips",
        ("mips64", true) => "mips64le",
        ("mips64", false) => "mips64",
        ("loongarch64", _) => "loong64",
        ("wasm32", _) => "wasm",
        (other, _) => other,
    }
}

/// Maps Rust's `target_os` to Go's `GOOS`; unknown names pass through.
pub(crate) fn go_os(rust: &'static str) -> &'static str {
    match rust {
        "macos" => "darwin",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_are_go_names() {
        let cases = [
            ("x86_64", true, "amd64"),
            ("aarch64", true, "arm64"),
            ("x86", true, "386"),
            ("arm", true, "arm"),
            ("riscv64", true, "riscv64"),
            ("powerpc64", true, "ppc64le"),
            ("powerpc64", false, "ppc64"),
            ("s390x", false, "s390x"),
            ("loongarch64", true, "loong64"),
            ("mips64", true, "mips64le"),
            ("wasm32", true, "wasm"),
        ];
        for (rust, le, go) in cases {
            assert_eq!(go_arch(rust, le), go, "{rust} (little endian: {le})");
        }
    }

    #[test]
    fn os_names_are_go_names() {
        let cases = [
            ("linux", "linux"),
            ("macos", "darwin"),
            ("windows", "windows"),
            ("freebsd", "freebsd"),
            ("openbsd", "openbsd"),
            ("illumos", "illumos"),
            ("android", "android"),
        ];
        for (rust, go) in cases {
            assert_eq!(go_os(rust), go, "{rust}");
        }
    }

    #[test]
    fn this_build_maps_to_a_go_name() {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        assert_eq!((arch(), os()), ("amd64", "linux"));
        assert!(!arch().is_empty() && !os().is_empty());
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ids_already_sent_stay_the_same() {
        // HMAC-SHA256 keyed with the raw id, over the app name (checked
        // with Python's `hmac`).
        assert_eq!(
            id_of(b"4c4c4544-0042-3510-8052-b4c04f4e3232", "devsy"),
            "735d5438e3b6725990cf5312de714d02f030675268983ca1721950bdd2926d44"
        );
    }

    #[test]
    fn machine_id_has_the_wire_shape_is_stable_and_differs_per_app() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = machine_id("devsy", Some(dir.path()));
        assert!(devsy_telemetry_wire::is_machine_id(&a), "{a}");
        if let Some(raw) = os_machine_id() {
            assert_eq!(a, id_of(raw.as_bytes(), "devsy"));
        }
        assert_eq!(a, machine_id("devsy", Some(dir.path())));
        assert_ne!(a, machine_id("other-cli", Some(dir.path())));
    }

    #[test]
    fn opting_out_and_in_again_makes_a_new_fallback_id() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = fallback_id(dir.path())?;
        crate::files::forget(dir.path());
        assert!(!dir.path().join(FALLBACK_ID_FILE).exists());
        assert_ne!(fallback_id(dir.path())?, first);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_fallback_id_is_refused_and_its_target_untouched() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("chosen-key");
        fs::write(&target, "a key someone chose")?;
        std::os::unix::fs::symlink(&target, dir.path().join(FALLBACK_ID_FILE))?;
        assert!(
            fallback_id(dir.path()).is_err(),
            "refused: a random id serves the run"
        );
        assert_eq!(fs::read_to_string(&target)?, "a key someone chose");
        Ok(())
    }

    #[test]
    fn fallback_id_is_made_once_and_kept() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = fallback_id(dir.path())?;
        assert_eq!(first.len(), 64);
        assert_eq!(fallback_id(dir.path())?, first);
        assert_eq!(fs::read(dir.path().join(FALLBACK_ID_FILE))?, first);
        // Only the id file is left behind: no temporary files.
        assert_eq!(fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }
}
