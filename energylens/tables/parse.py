"""Parsing a table file (CSV/TSV, JSON lines, JSON, parquet) into a raw DataFrame.

The parse is strict where a lenient parser would be silently wrong: a row with more or
fewer fields than the header (a trailing comma, an unquoted comma inside a value) is an
error naming its line and the field counts, never a table whose columns are shifted. The
CSV path runs pandas' C parser on the file once; the slow line-by-line scans run only to
explain an error or to find the lines of offending rows.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .._optional import import_optional
from ..core.progress import logger
from .problems import file_error
from .sniff import TextFile, decode_error, read_bytes_lines, sniff_text

__all__ = ["read_table_file", "check_path", "TABLE_SUFFIXES"]

#: File suffix -> format (each may also end in .gz).
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl",
                  ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
_CHUNK_ROWS = 1 << 18
_BLOCK_BYTES = 1 << 16  # small: a freed multi-MB block raises glibc's mmap threshold,
# and the parser's buffers then stay on the heap (+26 MB peak on 1M rows)
LineMap = Callable[[list[int]], "list[int] | None"]


def check_path(path: Path, where: str) -> os.stat_result:
    """``os.stat`` of ``path``, or a SchemaError saying why it cannot be opened."""
    try:
        return path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            rule = "is a symbolic link loop (following it leads back to itself)"
        elif exc.errno == errno.ENOENT and path.is_symlink():
            rule = f"is a broken symbolic link (to '{os.readlink(path)}', which does not exist)"
        elif exc.errno == errno.ENOENT:
            rule = "no such file"
        else:
            rule = f"cannot be opened ({exc.strerror or exc})"
        raise file_error(where, rule, code="file.path") from exc


def _format_of(path: Path, where: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        suffix = Path(path.stem).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    with open(path, "rb") as fh:
        head = fh.read(4)
    if suffix in ("", ".gz"):  # no suffix: look at the content
        if head == b"PAR1":
            return "parquet"
        return "jsonl" if head.lstrip()[:1] == b"{" else "csv"
    hint = " An Excel workbook: save the sheet as CSV." if head[:2] == b"PK" or \
        suffix in (".xlsx", ".xls") else ""
    raise file_error(where, f"unknown file type '{suffix}'; expected .csv, .tsv, .txt, "
                            f".parquet, .jsonl or .json (optionally gzipped).{hint}",
                     code="file.type")


def read_table_file(path: Path, *, encoding: str | None = None
                    ) -> tuple[pd.DataFrame, LineMap | list[int] | None]:
    """Read one table file; return the raw table and its rows' lines (or a line finder).

    Raises
    ------
    SchemaError
        Naming the file, and the line where the problem is.
    """
    where = f"'{path}'"
    if check_path(path, where) and path.is_dir():
        raise file_error(where, "is a folder, not a table file", code="file.path",
                         advice=[{"option": "layout", "value": "auto",
                                  "effect": "to detect the measurement layout it holds"}])
    fmt = _format_of(path, where)
    try:
        if fmt == "parquet":
            return _read_parquet(path, where), None
        tf = sniff_text(path, where, encoding=encoding, delimited=fmt == "csv")
        if fmt == "jsonl":
            return _read_json_lines(tf)
        if fmt == "json":
            return _read_json(tf)
        return _read_csv(tf)
    except OSError as exc:  # unreadable mid-way (permissions, a vanished file)
        raise file_error(where, f"cannot be read ({exc.strerror or exc})",
                         code="file") from exc


# --------------------------------------------------------------------------- CSV
def _records(tf: TextFile):
    """``(first line, fields)`` of every non-blank record after the skipped lines."""
    with tf.open_text() as fh:
        for _ in range(tf.skip):
            fh.readline()
        reader = csv.reader(fh, delimiter=tf.delimiter)
        prev = tf.skip
        for rec in reader:
            start, prev = prev + 1, tf.skip + reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            yield start, rec


def _line_finder(tf: TextFile, n_rows: int) -> LineMap:
    def lines(positions: list[int]) -> list[int] | None:
        want, found, count = set(positions), {}, -1
        try:
            for count, (line, _) in enumerate(_records(tf), start=-1):
                if count in want:
                    found[count] = line
        except (csv.Error, UnicodeDecodeError, OSError):
            return None
        if count + 1 != n_rows:  # the scan and the parser disagree: give no line at all
            return None
        return [found[p] for p in positions]

    return lines


def _ragged_error(tf: TextFile, parser_message: str) -> Exception:
    try:
        recs = _records(tf)
        _, header = next(recs)
        n = len(header)
        bad, total, trailing, quoted = [], 0, True, None
        for line, rec in recs:
            if len(rec) != n:
                total += 1
                trailing &= len(rec) > n and not any(x.strip() for x in rec[n:])
                if quoted is None and any("\n" in x or "\r" in x for x in rec):
                    quoted = line
                if len(bad) < 5:
                    bad.append((line, len(rec)))
    except (csv.Error, StopIteration) as exc:
        return file_error(tf.where, f"cannot be parsed as delimited text ({exc})", code="parse")
    if not total:
        msg = parser_message.replace("Error tokenizing data. C error: ", "").strip()
        return file_error(tf.where, f"cannot be parsed as delimited text ({msg})", code="parse")
    shown = ", ".join(f"line {ln} has {k}" for ln, k in bad)
    more = f" and {total - len(bad)} more line(s)" if total > len(bad) else ""
    detail = ("These lines end with an empty extra field: a trailing delimiter. "
              if trailing else "") + \
        (f"A '\"' on line {quoted} opens a quoted value that runs over several lines: a "
         "missing closing quote? " if quoted else "") + \
        ("Values would land in the wrong columns: fix these lines (a missing or extra "
         f"delimiter, or an unquoted '{tf.delimiter}' inside a value).")
    return file_error(tf.where, f"{total} row(s) do not have the header's {n} fields (header "
                                f"on line {tf.header_line}): {shown}{more}", code="ragged_row",
                      lines=[ln for ln, _ in bad], detail=detail)


def _scan_decode(tf: TextFile, exc: UnicodeDecodeError) -> Exception:
    """The decode error of a file whose first 64 KiB decoded: the line that does not, and
    the ``encoding`` option when the caller gave the encoding."""
    if not tf.encoding.replace("-", "").lower().startswith("utf8") and tf.encoding.lower() in (
            "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        option = f" (as encoding={tf.encoding!r} says)" if tf.given else ""
        return file_error(tf.where, f"the file is not valid {tf.encoding}{option} ({exc.reason})",
                          code="file.encoding")
    for i, raw in enumerate(read_bytes_lines(tf), start=1):
        try:
            raw.decode(tf.encoding)
        except UnicodeDecodeError as line_exc:
            return decode_error(tf.where, raw, line_exc, tf.encoding, line_base=i,
                                given=tf.given)
    return file_error(tf.where, f"the file is not valid UTF-8 ({exc.reason})",
                      code="file.encoding")


def _empty_headers(df: pd.DataFrame, tf: TextFile) -> pd.DataFrame:
    """Drop columns with an empty header and no values (a trailing delimiter)."""
    if not tf.header or len(tf.header) != len(df.columns):
        return df
    empty = [c for h, c in zip(tf.header, df.columns) if not h.strip()]
    if not empty:
        return df
    filled = [c for c in empty if df[c].notna().any()]
    if filled:
        i = list(df.columns).index(filled[0])
        raise file_error(tf.where, f"field {i + 1} of the header (line {tf.header_line}) is "
                                   "empty, but rows hold values under it", code="empty_header",
                         lines=[tf.header_line], detail="Give the column a name.")
    logger.info("%s: dropped %d empty column(s) without a header (trailing delimiters)",
                tf.where, len(empty))
    return df.drop(columns=empty)


def _label_dtypes(tf: TextFile) -> dict[str, type]:
    """Headers that name a label column (model, GPU, precision ...), read as text: pandas'
    type guessing would make model '1.10' the number 1.1 (the same model as '1.1') and
    '007' the number 7."""
    from .columns import COLUMNS
    from .headers import header_column

    out = {}
    for h in tf.header or ():
        canon = header_column(h)
        if canon is not None and COLUMNS[canon].dtype == "str":
            out[h] = str
    return out


def _parse(tf: TextFile) -> pd.DataFrame:
    """pandas' C parser in blocks of rows: the peak memory stays near the table's size."""
    with pd.read_csv(tf.path, sep=tf.delimiter, skiprows=tf.skip, header=0, index_col=False,
                     encoding=tf.encoding, encoding_errors="strict", compression=tf.compression,
                     skip_blank_lines=True, chunksize=_CHUNK_ROWS,
                     dtype=_label_dtypes(tf) or None) as reader:
        parts = list(reader)
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


def _fast_ragged(tf: TextFile) -> bool | None:
    """False when every data row certainly has the header's field count; None when a
    cheap count cannot tell (then the parser's checks and a scan decide).

    Without quotes or blank lines, the rows after the header must hold (fields - 1)
    delimiters each, and the C parser already refuses rows that are too long, so equal
    totals leave no room for a short row. Counting bytes runs at memory speed.
    """
    if tf.encoding not in ("utf-8", "utf-8-sig", "latin-1") or len(tf.delimiter) != 1:
        return None
    delim, delims, rows, last = tf.delimiter.encode(), 0, 0, b"\n"
    with tf.open_bytes() as fh:
        for _ in range(tf.header_line):  # the comments, blank lines and the header itself
            if b"\r" in fh.readline()[:-2]:
                return None  # a lone CR ends a line for the parsers, not for readline
        while chunk := fh.read(_BLOCK_BYTES):
            if b'"' in chunk or (b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n")):
                return None  # quoted delimiters, or line ends the count would miss
            delims += chunk.count(delim)
            rows += chunk.count(b"\n")
            last = chunk[-1:]
    rows += last != b"\n"  # a last line without its line end
    return False if delims == rows * (len(tf.header) - 1) else None


def _read_csv(tf: TextFile) -> tuple[pd.DataFrame, LineMap]:
    fast = _fast_ragged(tf)
    if fast is None and any(w != len(tf.header) for w in tf.sample_widths):
        raise _ragged_error(tf, "")  # e.g. a trailing comma on every row: pandas drops it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)
        try:
            df = _parse(tf)
        except pd.errors.ParserError as exc:
            raise _ragged_error(tf, str(exc)) from None
        except UnicodeDecodeError as exc:
            raise _scan_decode(tf, exc) from None
        except pd.errors.EmptyDataError:
            raise file_error(tf.where, "the file is empty (no header, no rows)",
                             code="file.empty") from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        raise _ragged_error(tf, "rows longer than the header")
    if fast is None and len(df.columns) > 1 and len(df) and df.iloc[:, -1].isna().any():
        short = _ragged_error(tf, "")  # a short row fills its last fields with NaN
        if short.problems[0]["code"] == "ragged_row":
            raise short
    return _empty_headers(df, tf), _line_finder(tf, len(df))


# --------------------------------------------------------------------------- JSON
def _parse_int(text: str) -> int | float:
    """JSON integers beyond int64 become floats (``inf`` past the float range)."""
    return int(text) if len(text) < 19 else float(text)


def _object(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        rep = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"names the key(s) {rep} more than once")
    return dict(pairs)


def _loads(text: str) -> object:
    return json.loads(text, parse_int=_parse_int, object_pairs_hook=_object)


def _read_json_lines(tf: TextFile) -> tuple[pd.DataFrame, list[int]]:
    """One JSON object a line; values are kept as written (``true`` stays a boolean)."""
    records, lines = [], []
    with tf.open_text() as fh:
        try:
            for i, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    rec = _loads(text)
                except json.JSONDecodeError as exc:
                    raise file_error(tf.where, f"line {i} is not valid JSON ({exc.msg}, "
                                               f"character {exc.colno})", code="json",
                                     lines=[i]) from None
                except (ValueError, RecursionError) as exc:
                    raise file_error(tf.where, f"line {i} {exc}" if isinstance(exc, ValueError)
                                     else f"line {i} is nested too deeply", code="json",
                                     lines=[i]) from None
                if not isinstance(rec, dict):
                    raise file_error(tf.where, f"line {i} holds a JSON {type(rec).__name__}, "
                                               "not an object", code="json", lines=[i])
                records.append(rec)
                lines.append(i)
        except UnicodeDecodeError as exc:
            raise _scan_decode(tf, exc) from None
    if not records:
        raise file_error(tf.where, "the file is empty (no JSON objects)", code="file.empty")
    return pd.DataFrame.from_records(records), lines


def _read_json(tf: TextFile) -> tuple[pd.DataFrame, list[int] | None]:
    try:
        with tf.open_text() as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise _scan_decode(tf, exc) from None
    try:
        data = _loads(text)
    except json.JSONDecodeError:
        return _read_json_lines(tf)  # one object a line under a .json name
    except (ValueError, RecursionError) as exc:
        raise file_error(tf.where, f"is not a usable JSON document ({exc})",
                         code="json") from None
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data), None
    if isinstance(data, dict) and data and all(isinstance(v, (dict, list))
                                               for v in data.values()):
        try:
            return pd.DataFrame(data), None
        except ValueError as exc:
            raise file_error(tf.where, f"the JSON columns do not form a table ({exc})",
                             code="json") from None
    if isinstance(data, dict):
        return pd.DataFrame.from_records([data]), None
    raise file_error(tf.where, f"holds a JSON {type(data).__name__}; expected a list of "
                               "objects, an object of columns, or one object a line",
                     code="json")


# --------------------------------------------------------------------------- parquet
def _read_parquet(path: Path, where: str) -> pd.DataFrame:
    pq = import_optional("pyarrow.parquet", purpose="read parquet tables")
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError kinds
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise file_error(where, f"is not a readable parquet file ({first})",
                         code="file.parquet") from None
    counts = pd.Series(names).value_counts()
    repeated = sorted(counts[counts > 1].index)
    if repeated:
        raise file_error(where, f"the parquet file names the column(s) {repeated} more than "
                                "once", code="duplicate_header",
                         detail="Every column needs its own name: rename or drop the repeats.")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise file_error(where, f"is not a readable parquet file ({first})",
                         code="file.parquet") from None
    return df
