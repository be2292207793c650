"""Streaming readers for raw CSV and parquet files (bounded memory, with locations for error messages).

CSV files are read with pyarrow's streaming reader in blocks of ``block_bytes`` (every needed column as a
string; empty cells are missing), parquet files batch by batch. Each chunk comes with the index of its first
data row so that a bad cell can be reported as ``<file>: line N, column 'X'`` (CSV: physical line, header =
line 1; parquet: ``row N``, 1-based).
"""

from __future__ import annotations

import contextlib
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Sequence, Tuple

from collapse_lab.errors import UserError
from collapse_lab.io.inputs import check_regular_file, printable

__all__ = ["Chunk", "read_header", "iter_chunks", "location"]

DEFAULT_BLOCK_BYTES = 1 << 24  # 16 MiB of CSV text per chunk
PARQUET_BATCH_ROWS = 1 << 17
MAX_HEADER_BYTES = 1 << 20  # a header line longer than 1 MiB is not a header (e.g. /dev/zero, a binary file)


@dataclass
class Chunk:
    """A block of rows: ``table`` is a pyarrow Table with the requested columns."""

    start: int  # index of the first data row in the file (0-based)
    table: Any

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


def location(path: Path, fmt: str, row: int) -> str:
    """Human location of data row ``row`` (0-based): ``line row+2`` in a CSV with header, else ``row row+1``."""
    return f"{path}: line {row + 2}" if fmt == "csv" else f"{path}: row {row + 1}"


def read_header(path: Path, fmt: str, sep: str = ",") -> List[str]:
    """Column names of a CSV header line or a parquet schema; missing/empty files raise a UserError.

    The header line must end within :data:`MAX_HEADER_BYTES` and hold no bare carriage return; a leading UTF-8
    byte-order mark is dropped (pyarrow drops it too when it reads the rows). Compressed files (``.gz``,
    ``.bz2``, ``.zst``...) are decompressed on the fly; a truncated or corrupt stream is a UserError.
    """
    check_regular_file(path, f"{fmt} file", missing="file not found")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError subclasses for non-parquet input
            raise UserError(f"{path}: not a readable parquet file ({_arrow_message(exc)})") from None
    import pyarrow as pa

    first = b""
    try:
        with pa.input_stream(str(path)) as stream:  # transparently decompresses .gz/.bz2/.zst
            while b"\n" not in first and len(first) <= MAX_HEADER_BYTES:
                block = stream.read(1 << 16)
                if not block:
                    break
                first += block
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable{_compression(path)} file ({_arrow_message(exc)})") from None
    raw = first.split(b"\n")[0]
    if len(raw) > MAX_HEADER_BYTES:
        raise UserError(f"{path}: line 1: no end of line in the first {MAX_HEADER_BYTES >> 20} MiB; expected a "
                        "header line of column names")
    line = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    line = line[:-1] if line.endswith("\r") else line
    if not line:
        raise UserError(f"{path}: line 1: empty file, expected a header line of column names")
    if "\r" in line:
        raise UserError(f"{path}: line 1: carriage return inside the header line; expected lines ending in "
                        "\\n or \\r\\n")
    try:
        return next(csv.reader([line], delimiter=sep))
    except csv.Error as exc:
        raise UserError(f"{path}: line 1: unreadable header ({exc})") from None


def _compression(path: Path) -> str:
    return {".gz": " gzip", ".bz2": " bzip2", ".zst": " zstd", ".lz4": " lz4"}.get(path.suffix, "")


def _arrow_message(exc: BaseException) -> str:
    """The first line of a pyarrow/OS error, control characters escaped."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return printable(lines[0] if lines else type(exc).__name__)[:300]


def _check_columns(path: Path, header: Sequence[str], columns: Sequence[str]) -> None:
    for name in columns:
        if name not in header:
            shown = ", ".join(printable(h) for h in header[:50]) + (" ..." if len(header) > 50 else "")
            raise UserError(f"{path}: line 1: column {name!r} not found; the header has: {shown}")


def iter_chunks(path: Path, fmt: str, columns: Sequence[str], sep: str = ",",
                block_bytes: int | None = None, desc: str | None = None,
                progress: bool | None = None) -> Iterator[Chunk]:
    """Yield :class:`Chunk` s of ``columns`` from ``path``; CSV cells arrive as strings (empty = null).

    ``block_bytes`` defaults to :data:`DEFAULT_BLOCK_BYTES` (CSV) and sets the parquet batch size to
    ``block_bytes // 128`` rows when given (default :data:`PARQUET_BATCH_ROWS`). Rows with a wrong number of
    fields raise ``UserError("<file>: line N: expected K columns, got M")``.
    ``progress`` follows tqdm's ``disable`` convention inverted: ``None`` shows a bar only on a terminal.
    """
    from tqdm.auto import tqdm

    header = read_header(path, fmt, sep)
    _check_columns(path, header, columns)
    disable = None if progress is None else not progress
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        start = 0
        with tqdm(total=pf.metadata.num_rows, desc=desc or path.name, unit="row", unit_scale=True,
                  disable=disable, leave=False) as bar:
            rows = PARQUET_BATCH_ROWS if block_bytes is None else max(1, int(block_bytes) // 128)
            batches = pf.iter_batches(batch_size=rows, columns=list(columns))
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (OSError, pa.ArrowException) as exc:  # corrupt pages past the footer
                    raise UserError(f"{path}: row {start + 1}: unreadable parquet data "
                                    f"({_arrow_message(exc)})") from None
                table = pa.Table.from_batches([batch])
                yield Chunk(start, table)
                start += table.num_rows
                bar.update(table.num_rows)
        return

    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {name: pa.string() for name in columns}
    # multithreaded parsing without a Python row handler: a handler would run on pyarrow's worker threads, and one
    # still running when the interpreter exits after the error aborts the process ("terminate called ...");
    # a malformed row is located by a serial rescan on this thread (error path only)
    read_opts = pacsv.ReadOptions(block_size=int(block_bytes or DEFAULT_BLOCK_BYTES), use_threads=True)
    parse_opts = pacsv.ParseOptions(delimiter=sep)
    convert_opts = pacsv.ConvertOptions(include_columns=list(columns), column_types=types,
                                        strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True)
    compressed = path.suffix in (".gz", ".bz2", ".zst", ".lz4")
    total = None if compressed else path.stat().st_size

    def invalid(exc: Exception) -> UserError:
        row, undecodable = _first_bad_row(path, read_opts, parse_opts, convert_opts)
        if row is not None:
            line = f"line {row.number}" if row.number is not None else "a line"
            return UserError(f"{path}: {line}: expected {row.expected_columns} columns, got {row.actual_columns}")
        if undecodable:
            return UserError(f"{path}: a row with the wrong number of columns, not UTF-8 text "
                             f"({_arrow_message(exc)})")
        return UserError(f"{path}: unreadable{_compression(path)} CSV ({_arrow_message(exc)})")

    stream = pa.input_stream(str(path))
    try:
        with tqdm(total=total, desc=desc or path.name, unit="B", unit_scale=True, disable=disable,
                  leave=False) as bar:
            try:
                reader = pacsv.open_csv(stream, read_options=read_opts, parse_options=parse_opts,
                                        convert_options=convert_opts)
            except (OSError, pa.ArrowException) as exc:
                raise invalid(exc) from None
            start, done = 0, 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (OSError, pa.ArrowException) as exc:
                    raise invalid(exc) from None
                if batch.num_rows == 0:
                    continue
                table = pa.Table.from_batches([batch])
                yield Chunk(start, table)
                start += table.num_rows
                if total is not None:
                    pos = min(stream.tell(), total)
                    bar.update(pos - done)
                    done = pos
    finally:
        stream.close()


@contextlib.contextmanager
def _handler_errors(caught: List[BaseException]) -> Iterator[None]:
    """Record exceptions raised inside pyarrow's callbacks instead of printing them.

    pyarrow decodes a malformed row as UTF-8 before it calls ``invalid_row_handler``; for other bytes that
    decoding fails inside the callback, which Python reports through ``sys.unraisablehook`` ("Exception ignored
    in ...", a traceback on stderr) while the read itself fails with a parse error. The hook is swapped only for
    the duration of one pyarrow call.
    """
    previous = sys.unraisablehook
    sys.unraisablehook = lambda info: caught.append(info.exc_value)
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _first_bad_row(path: Path, read_opts: Any, parse_opts: Any, convert_opts: Any) -> Tuple[Any, bool]:
    """``(row, undecodable)``: the first malformed row (pyarrow's ``InvalidRow``: ``number``, ``expected_columns``,
    ``actual_columns``; None if none was seen) found by a serial rescan, and whether a malformed row was not
    UTF-8 text (pyarrow decodes it before calling the handler, which then never sees it)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    found: List[Any] = []
    undecodable: List[BaseException] = []

    def on_invalid(row: Any) -> str:
        found.append(row)
        return "error"

    serial = pacsv.ReadOptions(block_size=read_opts.block_size, use_threads=False)
    strict = pacsv.ParseOptions(delimiter=parse_opts.delimiter, invalid_row_handler=on_invalid)
    try:
        with pa.input_stream(str(path)) as stream, _handler_errors(undecodable):
            for _ in pacsv.open_csv(stream, read_options=serial, parse_options=strict, convert_options=convert_opts):
                pass
    except (OSError, pa.ArrowException):
        pass
    return (found[0] if found else None), any(isinstance(e, UnicodeDecodeError) for e in undecodable)
