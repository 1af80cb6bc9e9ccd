//! The files telemetry creates, and how: private to the user (on Unix,
//! directories `0700` and files `0600`, set at creation, so there is no
//! moment in which one exists with wider rights) and never through a
//! symbolic link (a link planted where a telemetry file or the spool
//! should be is refused, its target untouched).
//!
//! The fallback machine id is the key of the hashed id: readable by other
//! users, it would let them compute the same id; the spool holds events.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::Path;

/// `dir` and its missing parents, each created `0700`. The config dir may
/// be a link (dotfile managers make `~/.devsy` one): it is the user's.
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A directory of telemetry's own (the spool): created `0700`, made `0700`
/// if an older version left it wider, and refused when it is a link.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir)?;
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symbolic link: refused",
            dir.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Whether `path` is a symbolic link (which is then not to be used).
pub(crate) fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
        // Signed as `open` takes it; the flag is a small positive bit.
        #[allow(clippy::cast_possible_wrap)]
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options
}

/// A new file at `path`, `0600`; fails if anything (a link included)
/// is there already.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    options().write(true).create_new(true).open(path)
}

/// The file at `path` for reading and writing, created `0600` if missing;
/// refused if it is a symbolic link.
pub(crate) fn open_or_create(path: &Path) -> io::Result<File> {
    options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The text of the file at `path`; refused if it is a symbolic link.
pub(crate) fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    options().read(true).open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// As [`read_to_string`], and the file made `0600` if an older version
/// left it wider (through the open file, not the path).
pub(crate) fn read_private(path: &Path) -> io::Result<String> {
    let mut file = options().read(true).open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Writes `bytes` to `dir/name` atomically: to a new private temporary
/// file, then renamed into place (a link at `name` is replaced, never
/// written through).
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_then_place(dir, name, bytes, |tmp, _| fs::rename(tmp, dir.join(name)))
}

/// Writes `bytes` to a new private temporary file for `name` in `dir`,
/// then lets `place` put it where it goes (a rename, a hard link), given
/// its path and the open file. The temporary file is gone afterwards,
/// whatever happened.
pub(crate) fn write_then_place(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    place: impl FnOnce(&Path, &File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // What a crashed run of the same id left (or a link planted there).
    let _ = fs::remove_file(&tmp);
    let placed = (|| {
        let mut file = create_new(&tmp)?;
        file.write_all(bytes)?;
        place(&tmp, &file)
    })();
    // Still there after a failure, or a hard link (gone after a rename).
    let _ = fs::remove_file(&tmp);
    placed
}

/// Telemetry was turned off, by any rule or by `disable()`: what it kept
/// in the config dir `dir` goes, the spool's batches, the fallback id and
/// the notice's mark, so that opting in again starts afresh.
pub(crate) fn forget(dir: &Path) {
    crate::spool::Spool::new(dir).forget();
    crate::identity::forget(dir);
    crate::notice::forget(dir);
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn what_is_created_is_private() -> io::Result<()> {
        let home = tempfile::tempdir()?;
        let dir = home.path().join("a").join("b");
        create_dir_all(&dir)?;
        assert_eq!((mode(&home.path().join("a")), mode(&dir)), (0o700, 0o700));
        write_atomically(&dir, "f", b"x")?;
        assert_eq!(mode(&dir.join("f")), 0o600);
        drop(open_or_create(&dir.join("lock"))?);
        assert_eq!(mode(&dir.join("lock")), 0o600);
        Ok(())
    }

    #[test]
    fn a_planted_link_is_refused_and_its_target_untouched() -> io::Result<()> {
        let home = tempfile::tempdir()?;
        let target = home.path().join("target");
        fs::write(&target, "theirs")?;
        let link = home.path().join("link");
        std::os::unix::fs::symlink(&target, &link)?;
        assert!(read_to_string(&link).is_err());
        assert!(open_or_create(&link).is_err());
        assert!(create_new(&link).is_err());
        let linked_dir = home.path().join("dir");
        std::os::unix::fs::symlink(home.path(), &linked_dir)?;
        assert!(create_private_dir(&linked_dir).is_err());
        assert!(
            create_dir_all(&linked_dir).is_ok(),
            "a config dir may be a link"
        );
        assert_eq!(fs::read_to_string(&target)?, "theirs");
        Ok(())
    }
}
