//! Files vigil keeps beside its database (the roster snapshot, the
//! matcher's index file): written whole or not at all.
//!
//! A leaf utility like [`crate::identity`]: any layer may use it, and it
//! uses no module of the crate. It never decides what goes in a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes the file at `path` through `write`, atomically: into a temporary
/// file of its own in the same directory (named `prefix…​.tmp`; two writers
/// that both find the file stale never share one), synced, then renamed
/// over `path`. A reader sees the old file or the new one, whole; a crash
/// leaves at most a stray temporary file, and a failure removes it. The
/// file is readable by its owner only (it may hold ID numbers).
pub fn write_atomically<T>(
    path: &Path,
    prefix: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> io::Result<T> {
    let mut file = AtomicFile::create(path, prefix)?;
    let out = write(file.writer())?;
    file.commit()?;
    Ok(out)
}

/// [`write_atomically`] for a writer that cannot be one closure (one that
/// awaits between writes, streaming rows from the database): create it,
/// write through [`AtomicFile::writer`], then [`AtomicFile::commit`].
/// Dropped without a commit, it removes its temporary file and `path` is
/// left as it was.
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: tempfile::NamedTempFile,
    writer: BufWriter<File>,
}

impl AtomicFile {
    /// A temporary file beside `path`, named `prefix…​.tmp`.
    pub fn create(path: &Path, prefix: &str) -> io::Result<AtomicFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".tmp")
            .tempfile_in(dir)?;
        let writer = BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone()?);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            writer,
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Flushes, syncs and renames the file over `path`.
    pub fn commit(self) -> io::Result<()> {
        let AtomicFile {
            path,
            tmp,
            mut writer,
        } = self;
        writer.flush()?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept");
        write_atomically(&path, ".kept-", |w| w.write_all(b"old")).unwrap();
        let failed = write_atomically(&path, ".kept-", |w| {
            w.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn an_atomic_file_dropped_without_commit_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept");
        write_atomically(&path, ".kept-", |w| w.write_all(b"old")).unwrap();
        let mut f = AtomicFile::create(&path, ".kept-").unwrap();
        f.writer().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&path, ".kept-").unwrap();
        f.writer().write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomically(&path, ".secret-", |w| w.write_all(b"x")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
