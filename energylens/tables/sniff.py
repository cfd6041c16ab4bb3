"""What a text file is before it is parsed: compression, encoding, delimiter, header.

A profiling table arrives from spreadsheets, scripts and instruments, so the bytes are
looked at before any parser sees them:

* gzip is recognised by its magic bytes, whatever the file is called;
* a byte-order mark (UTF-8, UTF-16, UTF-32) sets the encoding; NUL bytes without one
  (UTF-16 saved without a mark, or a binary file) and bytes that are not UTF-8 (a Latin-1
  export) are errors naming the line;
* a given ``encoding`` must be a text encoding Python's codecs know, and bytes it does not
  decode are errors naming the file and the option (with the encoding the bytes suggest);
* blank lines and ``#`` comment lines before the header are skipped;
* the delimiter is read from the header line (comma, semicolon, tab or ``|``);
* a header that names a column twice is an error (a parser would silently rename the
  second ``energy_j`` to ``energy_j.1``).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..core.progress import logger
from .problems import file_error

__all__ = ["TextFile", "sniff_text", "decode_error", "read_bytes_lines", "check_encoding"]

_HEAD = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DELIMITERS = (",", ";", "\t", "|")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "'|'"}


@dataclass
class TextFile:
    """A text table on disk, as sniffed: how to open it and where its header is."""

    path: Path
    where: str
    compression: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    skip: int = 0  # physical lines before the header (blank or comments)
    header: list[str] = field(default_factory=list)
    header_line: int = 1
    sample_widths: list[int] = field(default_factory=list)  # fields of the first data rows
    given: bool = False  # the encoding is the caller's (encoding=), not a byte-order mark's

    def open_text(self, errors: str = "strict") -> IO[str]:
        """The decoded text, as csv and json parsers read it (newlines untranslated)."""
        if self.compression == "gzip":
            return gzip.open(self.path, "rt", encoding=self.encoding, errors=errors, newline="")
        return open(self.path, encoding=self.encoding, errors=errors, newline="")

    def open_bytes(self) -> IO[bytes]:
        """The raw (decompressed) bytes."""
        if self.compression == "gzip":
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")


def _head(path: Path, where: str, gz: bool) -> bytes:
    try:
        if gz:
            with gzip.open(path, "rb") as fh:
                return fh.read(_HEAD)
        with open(path, "rb") as fh:
            return fh.read(_HEAD)
    except (OSError, EOFError, zlib.error) as exc:
        if gz:
            raise file_error(where, f"the file starts like gzip but cannot be decompressed "
                                    f"({exc})", code="file.compression") from exc
        raise file_error(where, f"cannot be read ({exc.strerror or exc})", code="file") from exc


def check_encoding(encoding: str) -> str:
    """``encoding`` itself if it is a text encoding Python's codecs know, else a ValueError
    naming the option (``rot13`` and ``base64`` are codecs, but not of bytes to text).

    >>> check_encoding("latin-1")
    'latin-1'
    >>> check_encoding("rot13")
    Traceback (most recent call last):
    ...
    ValueError: encoding='rot13' is not a text encoding Python knows; give one such as 'utf-8', \
'latin-1', 'cp1252' or 'utf-16'.
    """
    try:
        codecs.lookup(encoding)
        "".encode(encoding)  # a codec that is not a text encoding raises LookupError here
    except (LookupError, ValueError):
        raise ValueError(f"encoding={encoding!r} is not a text encoding Python knows; give one "
                         "such as 'utf-8', 'latin-1', 'cp1252' or 'utf-16'.") from None
    return encoding


def _wide(encoding: str) -> bool:
    """Whether ``encoding`` is UTF-16 or UTF-32 (two or four bytes to an ASCII character)."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _bytes_look_like(head: bytes) -> str | None:
    """The encoding the bytes of a table suggest: UTF-16 or UTF-32 without a byte-order mark
    from where its NUL bytes fall, else UTF-8 if they decode as UTF-8, else None."""
    if b"\x00" in head:
        if head[1:4] == b"\x00\x00\x00":
            return "utf-32-le"
        if head[:3] == b"\x00\x00\x00":
            return "utf-32-be"
        return "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be" if head[:1] == b"\x00" \
            else None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not only a character cut at the end of the sample
            return None
    return "utf-8"


def _wrong_encoding(where: str, head: bytes, given: str, reason: str) -> Exception:
    """A SchemaError for a file the ``encoding`` given does not read, naming the option and
    the encoding its bytes suggest."""
    name = codecs.lookup(given).name.upper()
    guess = _bytes_look_like(head)
    advice = []
    if guess and codecs.lookup(guess).name != codecs.lookup(given).name:
        advice = [{"option": "encoding", "value": guess,
                   "effect": f"(the bytes read as {guess.upper()}"
                             + ("; the default" if guess == "utf-8" else "") + ")"}]
    return file_error(where, f"the file is not {name} text, as encoding={given!r} says: "
                             f"{reason}", code="file.encoding", advice=advice)


def decode_error(where: str, data: bytes, exc: UnicodeDecodeError, encoding: str,
                 line_base: int = 1, given: bool = False) -> Exception:
    """A SchemaError for bytes that do not decode, naming the line, the byte and a guess
    (and the ``encoding`` option, when the encoding was ``given``)."""
    line = line_base + data.count(b"\n", 0, exc.start)
    start = data.rfind(b"\n", 0, exc.start) + 1
    bad = data[exc.start: exc.start + 1]
    try:
        data[start: data.find(b"\n", exc.start) if b"\n" in data[exc.start:] else None
             ].decode("cp1252")
        guess = "it looks like Latin-1 / Windows-1252 text"
        advice = [{"option": "encoding", "value": "latin-1", "effect": "to read it as Latin-1"}]
    except UnicodeDecodeError:
        guess, advice = "it is not text in a known encoding", []
    name = "UTF-8" if encoding.replace("-", "").lower().startswith("utf8") else encoding
    if given:
        name += f" (as encoding={encoding!r} says)"
    return file_error(
        where, f"line {line} is not valid {name}: byte 0x{bad.hex() or '??'} at character "
               f"{exc.start - start + 1} ({exc.reason}); {guess}",
        code="file.encoding", lines=[line], advice=advice,
        detail="Save the file as UTF-8 (spreadsheets: 'CSV UTF-8').")


def _encoding(head: bytes, where: str, given: str | None) -> str:
    """Encoding of the file: its byte-order mark, else ``given``, else UTF-8."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            if given and codecs.lookup(given).name != codecs.lookup(name).name and \
                    not (name == "utf-8-sig" and codecs.lookup(given).name == "utf-8"):
                logger.info("%s: the byte-order mark says %s; encoding=%r is ignored",
                            where, name, given)
            if name != "utf-8-sig":
                logger.info("%s: read as %s (byte-order mark)", where, name.upper())
            return name
    if given:
        if _wide(given) and head and b"\x00" not in head:
            raise _wrong_encoding(where, head, given, "it holds no NUL bytes, which a table in "
                                  "UTF-16 or UTF-32 always has (every ASCII character takes "
                                  "two or four bytes, all but one of them zero)")
        return given
    if b"\x00" in head:
        line = head.count(b"\n", 0, head.index(b"\x00")) + 1
        guess = _bytes_look_like(head)
        raise file_error(where, f"the file holds NUL bytes (first on line {line}): it looks "
                                "like UTF-16 or UTF-32 text without a byte-order mark, or a "
                                "binary file", code="file.encoding", lines=[line],
                         detail="Save it as UTF-8 text.",
                         advice=[{"option": "encoding", "value": guess,
                                  "effect": f"to read it as {guess.upper()}"}]
                         if guess and guess != "utf-8" else ())
    return "utf-8"


def _decoded_head(head: bytes, where: str, encoding: str, complete: bool,
                  given: bool = False) -> str:
    """The sample decoded; ``given``: the encoding is the caller's, not the byte-order
    mark's or the default."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        return decoder.decode(head, final=complete)
    except UnicodeDecodeError as exc:
        if given and _wide(encoding):
            raise _wrong_encoding(where, head, encoding, exc.reason) from exc
        if encoding in ("utf-16", "utf-32"):
            raise file_error(where, f"the file is not valid {encoding.upper()} ({exc.reason})",
                             code="file.encoding") from exc
        raise decode_error(where, head, exc, encoding, given=given) from exc
    except UnicodeError as exc:  # a UTF-16 or UTF-32 stream without its byte-order mark
        raise _wrong_encoding(where, head, encoding, f"it has no byte-order mark, so its "
                                                    f"byte order is unknown ({exc})") from exc


def _fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(line, newline=""), delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _pick_delimiter(line: str, suffix: str, where: str) -> tuple[str, list[str]]:
    if suffix == ".tsv":
        return "\t", _fields(line, "\t")
    best = (0, 0, ",", [line])
    for i, d in enumerate(_DELIMITERS):
        fields = _fields(line, d)
        if (len(fields), -i) > best[:2]:
            best = (len(fields), -i, d, fields)
    if best[0] == 1:
        return ",", best[3]
    if best[2] != ",":
        logger.info("%s: read as %s-separated values (from the header line)", where,
                    _DELIMITER_NAMES[best[2]])
    return best[2], best[3]


def sniff_text(path: Path, where: str, *, encoding: str | None = None,
               delimited: bool = True) -> TextFile:
    """Look at the first 64 KiB of ``path``: compression, encoding, header and delimiter.

    Raises
    ------
    SchemaError
        For a broken gzip stream, NUL bytes, bytes that are not in the encoding, a file
        with no header, or a header that names a column twice.
    """
    if encoding is not None:
        check_encoding(encoding)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    gz = magic == _GZIP_MAGIC
    if path.suffix.lower() == ".gz" and not gz:
        logger.info("%s: named .gz but not gzip-compressed; read as plain text", where)
    head = _head(path, where, gz)
    complete = len(head) < _HEAD
    enc = _encoding(head, where, encoding)
    given = encoding is not None and enc == encoding  # not overridden by a byte-order mark
    tf = TextFile(path, where, "gzip" if gz else None, enc, given=given)
    if gz and path.suffix.lower() != ".gz":
        logger.info("%s: gzip-compressed content; decompressed while reading", where)
    if not delimited:
        _decoded_head(head, where, enc, complete, given)
        return tf
    text = _decoded_head(head, where, enc, complete, given).lstrip("\ufeff")
    comments = 0
    lines = _LINE_BREAK.split(text)  # as the parsers count lines: \r\n, \r or \n
    for i, raw in enumerate(lines):
        s = raw.strip()
        if s and not s.startswith("#"):
            if i == len(lines) - 1 and not complete:
                break  # the header line runs past the sample: leave it to the parser
            tf.skip, tf.header_line = i, i + 1
            suffix = path.suffix.lower() if path.suffix.lower() != ".gz" else \
                Path(path.stem).suffix.lower()
            tf.delimiter, tf.header = _pick_delimiter(raw.rstrip("\r"), suffix, where)
            tf.sample_widths = _widths(lines[i + 1: None if complete else -1], tf.delimiter)
            break
        comments += s.startswith("#")
    else:
        what = f"only {comments} comment line(s) and no header" if comments else \
            "the file is empty (no header, no rows)"
        raise file_error(where, what, code="file.empty")
    if comments:
        logger.info("%s: skipped %d comment line(s) before the header", where, comments)
    _check_header(tf)
    return tf


def _widths(lines: list[str], delimiter: str, n: int = 100) -> list[int]:
    """Field counts of the first ``n`` non-blank records of a sample (-1: unparsable)."""
    out: list[int] = []
    try:
        for rec in csv.reader(io.StringIO("\n".join(lines), newline=""), delimiter=delimiter):
            if rec and not (len(rec) == 1 and not rec[0].strip()):
                out.append(len(rec))
                if len(out) == n:
                    break
    except csv.Error:
        out.append(-1)
    return out


def _check_header(tf: TextFile) -> None:
    counts = Counter(h for h in tf.header if h.strip())
    repeated = [h for h, n in counts.items() if n > 1]
    if repeated:
        where_ = ", ".join(
            f"'{h}' (fields {', '.join(str(i + 1) for i, x in enumerate(tf.header) if x == h)})"
            for h in repeated)
        raise file_error(tf.where, f"the header on line {tf.header_line} names a column more "
                                   f"than once: {where_}", code="duplicate_header",
                         lines=[tf.header_line],
                         detail="Every column needs its own name: rename or drop the repeats.")


def read_bytes_lines(tf: TextFile):
    """Physical lines of the file as bytes (decompressed), for error scans."""
    with tf.open_bytes() as fh:
        yield from fh
