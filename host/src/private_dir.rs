//! Directories and files whose content only this user (or root) can have written: `cip`'s caches
//! (compiled modules, pulled policy modules).
//!
//! An entry of the compiled-module cache is machine code that `cip` maps and runs. Its header's
//! checksum finds a damaged entry, but it proves nothing about who wrote it: the key is computed
//! from public inputs and a forger computes the checksum as easily as `cip`. So an entry is
//! trusted only as far as its directory is. The policy store's files are re-hashed against
//! verified digests before use, but one another user could write would still let them hang `cip`
//! (a FIFO), exhaust its memory (a sparse file of terabytes) or, when root runs `cip`, make it
//! write where they point a link. Hence one rule for both: a cache is used only when its
//! directory, and every directory above it, is owned by this user or by root and writable by no
//! one else (an ancestor may be writable by others when its sticky bit is set, as `/tmp`: then no
//! one else can rename or remove what lies in it), and a file in it only when it is a regular
//! file (not a symbolic link, not a FIFO) owned by this user or root and writable by no one else.
//! These are OpenSSH's `StrictModes` rules for `~/.ssh`, group-writable included. Otherwise
//! another user who can write to the directory (a shared `CIP_CACHE_DIR`, a home directory that a
//! `sudo -E cip …` keeps, a volume shared between containers) could make `cip` run their code with
//! `cip`'s rights.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Why a directory or a file cannot be trusted to hold only this user's writing.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error("cannot create or inspect {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is owned by uid {owner}, neither this user (uid {user}) nor root")]
    Owner { path: PathBuf, owner: u32, user: u32 },
    #[error("{path} is writable by its group or by others (mode {mode:04o})")]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path} is a symbolic link")]
    Link { path: PathBuf },
    #[cfg(not(unix))]
    #[error("file ownership cannot be checked on this platform")]
    Unsupported,
}

impl Untrusted {
    /// What the user can do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            Self::Writable { .. } => {
                "remove the group's and others' write permission (`chmod go-w`), or set CIP_CACHE_DIR to a directory only you can write"
            }
            Self::Owner { .. } => "set CIP_CACHE_DIR to a directory of your own",
            _ => "set CIP_CACHE_DIR to a directory only you can write",
        }
    }
}

/// What a path is in the chain checked: the directory that holds the files, or one above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Holder,
    Ancestor,
}

/// The rule on one directory's owner and mode bits (`user`: the effective uid).
fn check_dir(path: &Path, owner: u32, mode: u32, user: u32, place: Place) -> Result<(), Untrusted> {
    const GROUP_OR_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;
    if owner != user && owner != 0 {
        return Err(Untrusted::Owner {
            path: path.to_owned(),
            owner,
            user,
        });
    }
    let shared = mode & GROUP_OR_OTHER_WRITE != 0;
    // Others may add files to a sticky directory: fine above the holder (they cannot move ours),
    // not in the holder itself (they could add an entry `cip` would look up).
    if shared && !(place == Place::Ancestor && mode & STICKY != 0) {
        return Err(Untrusted::Writable {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// The rule on one file's owner and mode bits.
fn check_file(path: &Path, owner: u32, mode: u32, user: u32) -> Result<(), Untrusted> {
    check_dir(path, owner, mode, user, Place::Holder)
}

/// `dir`, created (mode 0700) if missing, as a canonical path (no symbolic link left in it, so
/// what was checked is what is used) once it and every directory above it pass the rule of
/// this module's documentation.
pub fn private_dir(dir: &Path) -> Result<PathBuf, Untrusted> {
    private_dir_for(dir, effective_uid()?)
}

/// [`private_dir`] for a cache of `cip`'s, `what` (used in messages, as `consequence` says
/// what happens instead): `None`, with a warning naming the directory, the reason and the fix,
/// when the rule refuses it.
pub fn private_cache_dir(dir: &Path, what: &str, consequence: &str) -> Option<PathBuf> {
    private_dir(dir)
        .inspect_err(|reason| {
            tracing::warn!(dir = %dir.display(), %reason, fix = reason.fix(), "{what} not used: {consequence}");
        })
        .ok()
}

/// [`private_dir`] for the user `user` (tests check the owner rule as another user would).
fn private_dir_for(dir: &Path, user: u32) -> Result<PathBuf, Untrusted> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Untrusted::Io { path, source }
    };
    create_private(dir).map_err(io(dir))?;
    let real = std::fs::canonicalize(dir).map_err(io(dir))?;
    for (i, path) in real.ancestors().enumerate() {
        let metadata = std::fs::symlink_metadata(path).map_err(io(path))?;
        if !metadata.is_dir() {
            return Err(Untrusted::NotADirectory { path: path.to_owned() });
        }
        let place = if i == 0 { Place::Holder } else { Place::Ancestor };
        let (owner, mode) = owner_and_mode(&metadata)?;
        check_dir(path, owner, mode, user, place)?;
    }
    Ok(real)
}

/// Opens `path` for reading when it is a regular file (a symbolic link is not followed) that
/// passes the rule of this module's documentation; the checks are made on the opened file, so
/// what was checked is what is read.
pub fn open_private_file(path: &Path) -> Result<File, OpenError> {
    let user = effective_uid().map_err(OpenError::Untrusted)?;
    let file = open_no_follow(path).map_err(|e| {
        if is_link_refusal(&e) {
            OpenError::Untrusted(Untrusted::Link { path: path.to_owned() })
        } else {
            OpenError::Io(e)
        }
    })?;
    let metadata = file.metadata().map_err(OpenError::Io)?;
    if !metadata.is_file() {
        return Err(OpenError::Untrusted(Untrusted::NotAFile { path: path.to_owned() }));
    }
    let (owner, mode) = owner_and_mode(&metadata).map_err(OpenError::Untrusted)?;
    check_file(path, owner, mode, user).map_err(OpenError::Untrusted)?;
    Ok(file)
}

/// Why [`open_private_file`] gave no file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened (`NotFound` when there is none).
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Untrusted(Untrusted),
}

/// A new file at `path` (never an existing one, nor through a link), readable and writable by
/// this user alone.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn create_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn effective_uid() -> Result<u32, Untrusted> {
    // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
    Ok(unsafe { libc::geteuid() })
}

#[cfg(not(unix))]
fn effective_uid() -> Result<u32, Untrusted> {
    Err(Untrusted::Unsupported)
}

#[cfg(unix)]
fn owner_and_mode(metadata: &std::fs::Metadata) -> Result<(u32, u32), Untrusted> {
    use std::os::unix::fs::MetadataExt as _;
    Ok((metadata.uid(), metadata.mode()))
}

#[cfg(not(unix))]
fn owner_and_mode(_: &std::fs::Metadata) -> Result<(u32, u32), Untrusted> {
    Err(Untrusted::Unsupported)
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Whether opening failed because the path is a symbolic link (`O_NOFOLLOW` gives `ELOOP`).
fn is_link_refusal(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;

    const ME: u32 = 1000;

    #[test]
    fn the_holder_must_be_mine_or_roots_and_written_by_no_one_else() {
        let p = Path::new("/d");
        assert!(check_dir(p, ME, 0o40700, ME, Place::Holder).is_ok());
        assert!(check_dir(p, ME, 0o40755, ME, Place::Holder).is_ok());
        assert!(check_dir(p, 0, 0o40755, ME, Place::Holder).is_ok(), "root's");
        assert!(matches!(
            check_dir(p, 1001, 0o40700, ME, Place::Holder),
            Err(Untrusted::Owner {
                owner: 1001,
                user: ME,
                ..
            })
        ));
        for mode in [0o40770, 0o40720, 0o40707, 0o40702, 0o40777, 0o41777, 0o41770] {
            assert!(
                matches!(
                    check_dir(p, ME, mode, ME, Place::Holder),
                    Err(Untrusted::Writable { .. })
                ),
                "{mode:o}"
            );
        }
        // Root is held to the same rule: a directory another user owns is refused to root too.
        assert!(matches!(
            check_dir(p, ME, 0o40700, 0, Place::Holder),
            Err(Untrusted::Owner { .. })
        ));
    }

    #[test]
    fn an_ancestor_may_be_shared_only_when_sticky() {
        let p = Path::new("/tmp");
        assert!(check_dir(p, 0, 0o41777, ME, Place::Ancestor).is_ok(), "/tmp");
        assert!(check_dir(p, 0, 0o40755, ME, Place::Ancestor).is_ok());
        assert!(matches!(
            check_dir(p, 0, 0o40777, ME, Place::Ancestor),
            Err(Untrusted::Writable { mode: 0o777, .. })
        ));
        assert!(matches!(
            check_dir(p, 0, 0o40775, ME, Place::Ancestor),
            Err(Untrusted::Writable { .. })
        ));
        assert!(matches!(
            check_dir(p, 1001, 0o41777, ME, Place::Ancestor),
            Err(Untrusted::Owner { .. })
        ));
    }

    #[test]
    fn a_missing_directory_is_created_for_this_user_alone() {
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("a/b");
        let real = private_dir(&dir).expect("a fresh private directory");
        assert_eq!(real, std::fs::canonicalize(&dir).expect("canonical"));
        for path in [base.path().join("a"), dir] {
            assert_eq!(
                std::fs::metadata(&path).expect("created").mode() & 0o777,
                0o700,
                "{path:?}"
            );
        }
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let base = tempfile::tempdir().expect("temp dir");
        let me = effective_uid().expect("uid");
        // Root's directories are trusted: as root, the directory is given to another user; as
        // another user, the rule is asked for a user who is neither its owner nor root.
        let (owner, user) = if me == 0 {
            std::os::unix::fs::chown(base.path(), Some(4242), None).expect("chown as root");
            (4242, 0)
        } else {
            (me, me.wrapping_add(1).max(1))
        };
        assert!(matches!(
            private_dir_for(base.path(), user),
            Err(Untrusted::Owner { owner: o, user: u, .. }) if o == owner && u == user
        ));
    }

    #[test]
    fn a_shared_directory_or_a_shared_ancestor_is_refused() {
        let base = tempfile::tempdir().expect("temp dir");
        let holder = base.path().join("holder");
        private_dir(&holder).expect("private");
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        chmod(&holder, 0o770);
        assert!(matches!(private_dir(&holder), Err(Untrusted::Writable { path, .. }) if path.ends_with("holder")));
        chmod(&holder, 0o700);
        chmod(base.path(), 0o777);
        assert!(
            matches!(private_dir(&holder), Err(Untrusted::Writable { path, .. }) if path == std::fs::canonicalize(base.path()).expect("canonical"))
        );
        chmod(base.path(), 0o1777);
        assert!(private_dir(&holder).is_ok(), "a sticky ancestor");
    }

    #[test]
    fn the_checked_path_has_no_link_left() {
        let base = tempfile::tempdir().expect("temp dir");
        let real = base.path().join("real");
        private_dir(&real).expect("private");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert_eq!(
            private_dir(&link).expect("through a link"),
            std::fs::canonicalize(&real).expect("canonical")
        );
    }

    #[test]
    fn files_are_opened_only_when_private_and_not_through_links() {
        let base = tempfile::tempdir().expect("temp dir");
        let file = base.path().join("entry");
        drop(create_private_file(&file).expect("created"));
        assert_eq!(std::fs::metadata(&file).expect("file").mode() & 0o777, 0o600);
        assert!(create_private_file(&file).is_err(), "never an existing file");
        assert!(open_private_file(&file).is_ok());

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(matches!(
            open_private_file(&file),
            Err(OpenError::Untrusted(Untrusted::Writable { mode: 0o666, .. }))
        ));

        let target = base.path().join("target");
        drop(create_private_file(&target).expect("created"));
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(matches!(
            open_private_file(&link),
            Err(OpenError::Untrusted(Untrusted::Link { .. }))
        ));
        assert!(matches!(
            open_private_file(base.path()),
            Err(OpenError::Untrusted(Untrusted::NotAFile { .. }))
        ));
        assert!(matches!(
            open_private_file(&base.path().join("missing")),
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }
}
