"""Writing files safely: atomically, and never over the user's own files by accident.

Every file energylens writes goes through :func:`atomic_open` (or :func:`atomic_write`):
the content goes to a temporary file in the same folder, is flushed to disk, and replaces
the destination in one :func:`os.replace`. A crash or an interrupt mid-write leaves the old
file (or none), never a truncated one.

A file energylens wrote is recognised by the ``format`` its JSON declares
(:func:`energylens_format`, ``"energylens.model"`` ...). :func:`check_file_output` and
:func:`check_folder_output` apply the rule every save follows: replace only a file (or write
only into a folder) of the same energylens format, anything else only when forced; never a
folder where a file is expected, nor a file where a folder is.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(d / "out.txt", "hello\\n").read_text()
'hello\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_open", "atomic_write", "same_file", "energylens_format", "check_file_output",
           "check_folder_output"]

#: Largest file :func:`energylens_format` reads (bytes); a model file is a few kilobytes.
_MAX_FORMAT_BYTES = 20_000_000


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
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; expected the path of a file to write.")
    if not (path.parent or Path(".")).is_dir():
        raise FileNotFoundError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")
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


def energylens_format(path: str | os.PathLike) -> str | None:
    """The energylens format a JSON file declares (``"energylens.model"`` ...), or None.

    None for anything else: a missing or unreadable file, a folder, a file that is not JSON,
    JSON without an ``energylens.*`` format, or a file too large to be a model file.
    """
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FORMAT_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    fmt = data.get("format") if isinstance(data, dict) else None
    return fmt if isinstance(fmt, str) and fmt.startswith("energylens.") else None


def check_file_output(path: str | os.PathLike, *, kind: str, what: str = "model",
                      force: bool = False) -> Path:
    """Check that a save may write the file ``path``; returns it as a :class:`~pathlib.Path`.

    Parameters
    ----------
    path : path
        The file to write.
    kind : str
        The energylens format of the file (``"energylens.model"``): an existing file of this
        format is replaced (saving twice is normal); any other existing file only with ``force``.
    what : str
        What is saved, for the messages ("model").
    force : bool
        Replace an existing file whatever it holds.

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder.
    FileNotFoundError
        The folder of ``path`` does not exist.
    FileExistsError
        ``path`` is a file of another kind and ``force`` is false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_file_output(d / "m.json", kind="energylens.model") == d / "m.json"
    True
    >>> _ = atomic_write(d / "notes.txt", "mine\\n")
    >>> check_file_output(d / "notes.txt", kind="energylens.model")
    Traceback (most recent call last):
    ...
    FileExistsError: '.../notes.txt' exists and is not an energylens model file; ...
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; a {what} is saved to a file. Give a file "
                                f"path, e.g. '{path / 'model.json'}'.")
    if not (path.parent or Path(".")).is_dir():
        raise FileNotFoundError(f"Cannot save the {what} to '{path}': the folder '{path.parent}' "
                                "does not exist.")
    if (path.exists() or path.is_symlink()) and not force and energylens_format(path) != kind:
        raise FileExistsError(f"'{path}' exists and is not an energylens {what} file; saving does "
                              "not replace it. Pass force=True to replace it, or choose another path.")
    return path


def check_folder_output(path: str | os.PathLike, *, index: str, kind: str, what: str = "model",
                        force: bool = False) -> Path:
    """Check that a save may write into the folder ``path`` (created later if absent).

    The folder may be absent, empty, or one energylens wrote before: its ``index`` file
    (``groups.json``) declares the format ``kind``. Any other folder needs ``force``; a file
    is never replaced by a folder.

    Raises
    ------
    NotADirectoryError
        ``path`` is an existing file (or the path of its folder runs through one).
    FileExistsError
        ``path`` is a folder energylens did not write and ``force`` is false.
    """
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise NotADirectoryError(f"'{path}' is a file; a {what} is saved to a folder. Give the path "
                                 "of a folder (it is created if absent).")
    if path.is_dir() and not force and energylens_format(path / index) != kind:
        with os.scandir(path) as entries:
            if any(True for _ in entries):
                raise FileExistsError(
                    f"'{path}' is a folder that energylens did not write (it holds other files and "
                    f"no {index} of a saved {what}); saving does not write into it. Pass force=True "
                    "to write into it anyway, or choose a new folder.")
    return path
