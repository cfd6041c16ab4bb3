"""Writing files safely: atomically, and never over the user's own files by accident.

Every file energylens writes goes through :func:`atomic_open` (or :func:`atomic_write`):
the content goes to a temporary file in the same folder, is flushed to disk, and replaces
the destination in one :func:`os.replace`. A crash or an interrupt mid-write leaves the old
file (or none), never a truncated one.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(d / "out.txt", "hello\\n").read_text()
'hello\\n'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_open", "atomic_write", "same_file"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *,
                encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : path
        Destination. Its folder must exist.
    mode : {"w", "wb"}
        Text or binary.
    encoding, newline :
        As for :func:`open` (text mode only).

    Yields
    ------
    file object
        Write to it; if the block raises, the temporary file is removed and ``path`` is
        left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb'; got {mode!r}.")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            # Keep the destination's permission bits; mkstemp creates files as 0600.
            with contextlib.suppress(OSError):
                os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns the path."""
    path = Path(path)
    if isinstance(data, bytes):
        with atomic_open(path, "wb") as fh:
            fh.write(data)
    else:
        with atomic_open(path, "w", encoding=encoding) as fh:
            fh.write(data)
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same existing file (through links and relative paths)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
