"""The auth profiles file on disk: read it, write it atomically, never let others read it.

Rules:
- The file is ``<state folder>/auth-profiles.json`` (``pipeline.config.state_dir``:
  ``$GENESIS_STATE_DIR``, else ``~/.genesis``). No file is no profiles.
- Like ssh with a private key, a file that the group or others may read or
  write (any of the mode bits 077), or that another user owns, is refused:
  a ``ConfigError`` naming the file and its mode, with the fix (``chmod 600
  FILE``). It is checked on the open file (``fstat``), so the file read is
  the file checked. Not on Windows, whose files have no such bits.
- A write never leaves a half-written or briefly readable file: the new
  content goes to a temporary file in the same folder, created with mode
  0600, flushed to disk, then renamed over the old one (``os.replace``).
  A state folder that does not exist yet is created with mode 0700; an
  existing folder's mode is left alone (the file's own mode is what guards it).
- A file left with no profile is deleted, not kept empty.
- A change (``update_auth_profiles``) reads, changes and writes the file
  while holding an exclusive lock on the state folder (``flock``, POSIX), so
  two ``genesis auth set`` at once both land: neither rewrites the file from
  a copy read before the other's write.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pipeline.auth_profiles import (
    AUTH_FILE_NAME,
    MAX_AUTH_FILE_BYTES,
    AuthProfiles,
    encode_auth_profiles,
    parse_auth_profiles,
)
from pipeline.config import state_dir
from pipeline.errors import ConfigError, ConfigIssue

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_CHECKS_MODES = os.name == "posix"


def auth_file(env: Mapping[str, str]) -> Path:
    """Where the auth profiles live for this environment.

    >>> str(auth_file({"GENESIS_STATE_DIR": "/srv/g"}))
    '/srv/g/auth-profiles.json'
    """
    return state_dir(env) / AUTH_FILE_NAME


def read_auth_profiles(path: Path) -> AuthProfiles:
    """The profiles stored at ``path`` (none if there is no file); a ConfigError if the file cannot be trusted or read."""
    source = str(path)
    try:
        # O_NONBLOCK: a FIFO in the file's place must not hang the open; it is refused below.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return AuthProfiles(source)
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            hint = f"remove it; genesis auth set creates {AUTH_FILE_NAME} anew"
            raise ConfigError(source, [ConfigIssue("", "not a regular file")], hint=hint)
        _check_private(info, source)
        data = _read_all(descriptor, MAX_AUTH_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot be read: {exc.strerror or exc}")]) from None
    finally:
        os.close(descriptor)
    return parse_auth_profiles(data, source)


def _read_all(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(descriptor, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def update_auth_profiles(path: Path, change: Callable[[AuthProfiles], AuthProfiles]) -> AuthProfiles:
    """Apply ``change`` to the stored profiles and store the result, the state folder locked throughout."""
    with _folder_lock(path.parent):
        updated = change(read_auth_profiles(path))
        write_auth_profiles(path, updated)
    return updated


def write_auth_profiles(path: Path, profiles: AuthProfiles) -> None:
    """Store ``profiles`` at ``path`` atomically with mode 0600, or delete the file when there are none."""
    source = str(path)
    if not profiles.keys:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(source, [ConfigIssue("", f"cannot be removed: {exc.strerror or exc}")]) from None
        return
    folder = path.parent
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600 and O_EXCL: nobody else can open it in between.
        descriptor, temporary = tempfile.mkstemp(prefix=f".{AUTH_FILE_NAME}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ConfigError(str(folder), [ConfigIssue("", f"cannot write the auth profiles here: {exc.strerror or exc}")]) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if _CHECKS_MODES:
                os.fchmod(handle.fileno(), FILE_MODE)  # whatever the umask or the platform's mkstemp did
            handle.write(encode_auth_profiles(profiles))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        _discard(temporary)
        raise ConfigError(source, [ConfigIssue("", f"cannot be written: {exc.strerror or exc}")]) from None
    except BaseException:
        _discard(temporary)
        raise
    _sync_folder(folder)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(str(folder), [ConfigIssue("", f"cannot hold the auth profiles: {exc.strerror or exc}")]) from None
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, the rename still keeps the file whole
            yield
            return
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _check_private(info: os.stat_result, source: str) -> None:
    if not _CHECKS_MODES:
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            source,
            [ConfigIssue("", f"other users may read or change it (mode {mode:04o}); it holds keys, so it is not used")],
            hint=f"chmod 600 {source}",
        )
    if info.st_uid != os.geteuid():
        raise ConfigError(
            source,
            [ConfigIssue("", f"owned by another user (uid {info.st_uid}); it holds keys, so it is not used")],
            hint="store your own keys: delete it, then genesis auth set PROVIDER (or set GENESIS_STATE_DIR to your own folder)",
        )


def _discard(temporary: str) -> None:
    try:
        os.unlink(temporary)
    except OSError:
        pass


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (POSIX: fsync the folder)."""
    if not _CHECKS_MODES:
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
