//! Files that must survive a crash whole: directories opened once as capabilities
//! ([`cap_std::fs::Dir`], so no name given later can lead outside them) and files replaced
//! atomically — written to a temporary file of a unique name, synced, renamed over the old
//! one, and the directory synced — so a crash at any instant leaves the old file or the new.
//! Depends on nothing else in the crate.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

/// Opens the directory at `path`, creating it (and its parents) when missing.
pub fn open_dir(path: &Path) -> std::io::Result<Dir> {
    Dir::create_ambient_dir_all(path, ambient_authority())?;
    Dir::open_ambient_dir(path, ambient_authority())
}

/// Replaces `name` in `dir` with `parts` (written one after the other), atomically and
/// durably. Concurrent writers of the same name each write a file of their own; the last
/// rename wins whole.
pub fn replace(dir: &Dir, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = format!(".{name}.{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let written = (|| {
        let mut file = dir.open_with(&temp, OpenOptions::new().write(true).create_new(true))?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()?;
        drop(file);
        dir.rename(&temp, dir, name)?;
        // The rename itself is made durable by syncing the directory.
        dir.open(".")?.sync_all()
    })();
    if written.is_err() {
        let _ = dir.remove_file(&temp);
    }
    written
}
