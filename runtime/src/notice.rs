//! The first-run notice: a CLI built on this library says, once, on its
//! first run with telemetry on, that it collects usage data and how to
//! turn that off. Printed on stderr only when stderr is a terminal and not
//! in CI (a script or a pipeline has nobody to tell, and its output must
//! not change); never when telemetry is off, in debug mode, or in a
//! courier. That it was shown is kept in the config dir, in
//! [`MARK_FILE`], written atomically and privately.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use crate::app::App;
use crate::files;

/// The file, in the config dir, that says the notice was shown.
pub(crate) const MARK_FILE: &str = "telemetry-notice-shown";

/// What the first run shows; see [`Builder::notice`](crate::Builder::notice).
///
/// ```
/// use devsy_telemetry_runtime::Notice;
///
/// let custom = Notice::Text("mycli sends usage statistics; MYCLI_DISABLE_TELEMETRY=1 stops it".into());
/// assert_ne!(custom, Notice::Default);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Notice {
    /// The library's text: it names the app, what is collected, the
    /// `<APP>_DISABLE_TELEMETRY` variable, and the app's own opt-out
    /// command when the builder was given one.
    #[default]
    Default,
    /// This text instead.
    Text(String),
    /// None: the app shows its own.
    Off,
}

/// The library's notice for `app`.
pub(crate) fn default_text(app: &App, opt_out_command: Option<&str>) -> String {
    let name = app.name();
    let how = match opt_out_command {
        Some(command) => format!("run `{command}`, or set {}=1", app.vars().disable),
        None => format!("set {}=1", app.vars().disable),
    };
    format!(
        "{name} collects anonymous usage data: which commands run, how long they take \
         and whether they fail, with the {name} version, OS and architecture; never \
         arguments, paths or names. To turn it off, {how}. This notice is shown once."
    )
}

/// Whether the notice was shown from this config dir.
pub(crate) fn shown(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(MARK_FILE)).is_ok_and(|meta| meta.is_file())
}

/// Whether this run may show it: a person reads stderr, not a pipeline.
pub(crate) fn may_show() -> bool {
    std::io::stderr().is_terminal()
}

/// What showing the notice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// It could not be printed: nothing is kept, the next run tries again.
    NotPrinted,
    /// Printed, and kept: not shown again.
    Kept,
    /// Printed, but where to keep that is missing or unwritable: shown
    /// again next time, rather than never.
    NotKept,
}

/// Prints `text` on stderr and, if it was printed, keeps that it was shown
/// in `dir` (if any).
pub(crate) fn show(dir: Option<&Path>, text: &str) -> Shown {
    let mut stderr = std::io::stderr().lock();
    if writeln!(stderr, "{text}")
        .and_then(|()| stderr.flush())
        .is_err()
    {
        return Shown::NotPrinted;
    }
    let kept = dir.is_some_and(|dir| {
        files::create_dir_all(dir).is_ok()
            && files::write_atomically(dir, MARK_FILE, b"shown\n").is_ok()
    });
    if kept { Shown::Kept } else { Shown::NotKept }
}

/// Telemetry was turned off: the next opt-in shows the notice again.
pub(crate) fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(MARK_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_shows_the_default_text() -> Result<(), devsy_telemetry_wire::app::NameError> {
        let app = App::new("devsy")?;
        let text = default_text(&app, Some("devsy context set-options -o TELEMETRY=false"));
        let readme = include_str!("../../README.md");
        assert!(readme.contains(&text), "README.md does not show:\n{text}");
        assert!(default_text(&app, None).contains("set DEVSY_DISABLE_TELEMETRY=1."));
        Ok(())
    }

    #[test]
    fn the_mark_is_kept_and_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!shown(dir.path()));
        assert_eq!(show(Some(dir.path()), "a notice"), Shown::Kept);
        assert!(shown(dir.path()));
        forget(dir.path());
        assert!(!shown(dir.path()));
    }
}
