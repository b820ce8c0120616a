"""File drops: CSV and XLSX exports (台账) of the source systems, row by row into the edge.

- CSV in UTF-8 (with or without BOM) or GB18030 (which covers GBK/GB2312: government CSVs from
  Excel on Chinese Windows are usually GBK). The encoding is decided by a strict first pass over
  the whole file, so a file is never half-imported in the wrong encoding.
- XLSX through openpyxl in read-only mode (rows are streamed; the workbook is never fully loaded).
- Headers are the exports' Chinese column names (`connectors.formats.columns`).
- A bad row is reported with its line number (the spreadsheet's row number; the header is line 1)
  and dead-lettered; it never stops the rows after it.
- Progress (rows done / total, accepted, rejected, first errors) goes to a callback after every
  chunk; `run_import_job` persists it on the job row that ``GET /api/v1/imports/{id}`` shows.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import logging
import shutil
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from connectors import store
from connectors.formats.columns import LAYOUTS, Column, id_header
from connectors.transports.edge import Edge, Incoming, Outcome

log = logging.getLogger(__name__)

FileKind = Literal["csv", "xlsx"]
CHUNK_ROWS = 500
_TRUE = {"是", "true", "1", "y", "yes", "对", "√"}
_FALSE = {"否", "false", "0", "n", "no", ""}


class FileRejected(Exception):
    """The file as a whole cannot be read (encoding, not a workbook, not this system's export)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def file_kind(filename: str) -> FileKind:
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    raise FileRejected(f"{filename!r}: only .csv and .xlsx exports are accepted")


# -- reading ---------------------------------------------------------------------------------------


def csv_encoding(path: Path) -> str:
    """'utf-8-sig' or 'gb18030', checked strictly over the whole file."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise FileRejected("the file is neither UTF-8 nor GB18030/GBK text")


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    encoding = csv_encoding(path)
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(f)
        start = 1
        try:
            for row in reader:
                yield start, list(row)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise FileRejected(f"line {reader.line_num}: not CSV: {exc}") from exc


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    from openpyxl import load_workbook  # imported late: only file drops need it

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise FileRejected(f"not an XLSX workbook: {exc}") from exc
    except Exception as exc:  # openpyxl's InvalidFileException and friends
        raise FileRejected(f"not an XLSX workbook: {exc}") from exc
    try:
        ws = wb.worksheets[0]
        for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
            yield n, list(row)
    finally:
        wb.close()


def iter_rows(path: Path, kind: FileKind) -> Iterator[tuple[int, list[Any]]]:
    """(line number, cells) for every row, the header row first."""
    return _csv_rows(path) if kind == "csv" else _xlsx_rows(path)


def _blank(cells: list[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def count_data_rows(path: Path, kind: FileKind) -> int:
    """Rows after the header that are not blank (the progress denominator)."""
    if kind == "xlsx":
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise FileRejected(f"not an XLSX workbook: {exc}") from exc
        try:
            ws = wb.worksheets[0]
            # Trust the sheet's stored dimension when it has one (no second pass over a big
            # sheet); count when it does not. Trailing blank rows make it an upper bound.
            max_row: int | None = ws.max_row
            if max_row:
                return max(max_row - 1, 0)
        finally:
            wb.close()
    return sum(1 for n, cells in iter_rows(path, kind) if n > 1 and not _blank(cells))


# -- rows → records ------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # A spreadsheet may hold a code or phone as a number: 13926048812.0 → "13926048812".
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    text = str(value).strip()
    return text or None


def _convert(col: Column, value: Any) -> Any:
    if col.convert == "value":
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value.strip() if isinstance(value, str) else value
    if col.convert == "bool":
        if isinstance(value, bool):
            return value
        flag = (_text(value) or "").lower()
        if flag in _TRUE:
            return True
        if flag in _FALSE:
            return None if flag == "" else False
        return flag  # the model rejects it, naming the field
    text = _text(value)
    if text is None:
        return None
    if col.convert == "code2":
        return text.zfill(2) if text.isdigit() else text
    if col.convert == "photos":
        photos = []
        for part in text.replace("\n", ";").replace("；", ";").split(";"):
            part = part.strip()
            if part:
                url, _, digest = part.partition("|")
                photos.append({"url": url.strip(), **({"sha256": digest.strip()} if digest.strip() else {})})
        return photos
    return text


@dataclass(frozen=True)
class RowMapper:
    """Maps one export's header row to record fields; built from the header of each file."""

    columns: tuple[tuple[int, Column], ...]
    ignored: tuple[str, ...]

    @classmethod
    def from_header(cls, source: str, header: list[Any]) -> RowMapper:
        by_header = {h: col for col in LAYOUTS[source] for h in col.headers}
        names = [(_text(h) or "").lstrip("\ufeff") for h in header]
        id_headers = id_header(source)
        if not any(n in id_headers for n in names):
            raise FileRejected(
                f"no {'/'.join(id_headers)} column: this is not a {source} export "
                f"(first columns: {', '.join(n for n in names[:6] if n)})"
            )
        seen: dict[str, str] = {}
        mapped: list[tuple[int, Column]] = []
        ignored: list[str] = []
        for i, name in enumerate(names):
            col = by_header.get(name)
            if col is None:
                if name:
                    ignored.append(name)
                continue
            if col.field in seen:
                raise FileRejected(f"columns {seen[col.field]!r} and {name!r} both give {col.field}")
            seen[col.field] = name
            mapped.append((i, col))
        return cls(tuple(mapped), tuple(ignored))

    def record(self, cells: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, col in self.columns:
            value = _convert(col, cells[i] if i < len(cells) else None)
            if value is None:
                continue
            head, _, tail = col.field.partition(".")
            if tail:
                out.setdefault(head, {})[tail] = value
            else:
                out[head] = value
        return out


def read_records(path: Path, kind: FileKind, source: str) -> Iterator[Incoming]:
    """Every data row as an `Incoming` record with its line number (blank rows are skipped)."""
    rows = iter_rows(path, kind)
    header = next(rows, None)
    if header is None:
        raise FileRejected("the file is empty (no header row)")
    mapper = RowMapper.from_header(source, header[1])
    width = len(header[1])
    for line, cells in rows:
        if _blank(cells):
            continue
        if kind == "csv" and len(cells) != width:
            yield Incoming(
                record=dict(zip((str(h) for h in header[1]), cells, strict=False)),
                error=f"line {line}: {len(cells)} fields where the header has {width}",
                line=line,
            )
            continue
        yield Incoming(record=mapper.record(cells), line=line)


# -- importing -----------------------------------------------------------------------------------


@dataclass
class Progress:
    rows_total: int | None
    rows_done: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # every rejected row: line + reason
    new_errors: list[dict[str, Any]] = field(default_factory=list)  # since the last report

    def add(self, outcomes: list[Outcome]) -> None:
        self.new_errors = []
        for o in outcomes:
            self.rows_done += 1
            if o.accepted:
                self.accepted += 1
            else:
                self.rejected += 1
                if len(self.errors) >= store.MAX_STORED_ERRORS:
                    continue  # counted; the dead-letter topic has the row itself
                err = {"line": o.line, "record_id": clip(o.record_id), "reason": clip(o.reason, REASON_CHARS)}
                self.new_errors.append(err)
                self.errors.append(err)


# A cell is echoed into an error (the id, a value the format refused) only this long: one
# spreadsheet cell can hold 32,767 characters, and a zipped XLSX of 60 KB can unpack to 60 MB.
ECHO_CHARS = 80
REASON_CHARS = 300


def clip(text: str | None, limit: int = ECHO_CHARS) -> str | None:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…（共 {len(text)} 字符）"


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


async def import_file(
    path: Path,
    kind: FileKind,
    source: str,
    edge: Edge,
    *,
    on_progress: ProgressCallback | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Progress:
    """Import every row; `FileRejected` when the file as a whole is unreadable. Rows already
    published stay published (a re-import of the same file is harmless: same (source, id))."""
    total = await asyncio.to_thread(count_data_rows, path, kind)
    progress = Progress(rows_total=total)
    records = read_records(path, kind, source)

    def next_chunk() -> list[Incoming]:
        chunk: list[Incoming] = []
        for item in records:
            chunk.append(item)
            if len(chunk) >= chunk_rows:
                break
        return chunk

    while chunk := await asyncio.to_thread(next_chunk):
        outcomes = await edge.ingest(source, chunk, stage=f"filedrop.{kind}")
        progress.add(outcomes)
        if on_progress is not None:
            result = on_progress(progress)
            if result is not None:
                await result
    progress.rows_total = progress.rows_done  # the dimension may have counted trailing blanks
    progress.new_errors = []
    return progress


async def run_import_job(
    engine: Engine, edge: Edge, job_id: int, source: str, path: Path, kind: FileKind
) -> str:
    """Import ``path`` as job ``job_id``, persisting progress; returns the final status."""

    async def persist(p: Progress) -> None:
        def write() -> None:
            with engine.begin() as conn:
                store.record_progress(
                    conn,
                    job_id,
                    rows_done=p.rows_done,
                    rows_total=p.rows_total,
                    accepted=p.accepted,
                    rejected=p.rejected,
                    new_errors=p.new_errors,
                )

        await asyncio.to_thread(write)

    status, error = "done", None
    try:
        final = await import_file(path, kind, source, edge, on_progress=persist)
        await persist(final)
    except FileRejected as exc:
        status, error = "failed", clip(exc.reason, REASON_CHARS)  # it may quote header cells
    except Exception as exc:  # the bus or the database: the job says so, the process goes on
        log.exception("import job %s failed", job_id)
        status, error = "failed", clip(f"{type(exc).__name__}: {exc}", REASON_CHARS)

    def finish() -> None:
        with engine.begin() as conn:
            store.finish_job(conn, job_id, status, error)

    await asyncio.to_thread(finish)
    return status


# -- directory watch -----------------------------------------------------------------------------


async def watch_directory(
    directory: Path,
    source: str,
    edge: Edge,
    engine: Engine,
    stop: asyncio.Event,
    *,
    interval_s: float = 5.0,
    once: bool = False,
) -> list[int]:
    """Import every .csv/.xlsx dropped into ``directory``, then move it to ``done/`` or ``failed/``.

    A file is taken only when its size did not change between two looks, so a copy in progress
    is never read half-written. Returns the job ids (useful with ``once``).
    """
    done_dir, failed_dir = directory / "done", directory / "failed"
    done_dir.mkdir(parents=True, exist_ok=True)
    failed_dir.mkdir(parents=True, exist_ok=True)
    sizes: dict[Path, int] = {}
    jobs: list[int] = []
    while not stop.is_set():
        for path in sorted(directory.iterdir()):
            if not path.is_file() or path.suffix.lower() not in (".csv", ".xlsx", ".xlsm"):
                continue
            size = path.stat().st_size
            if sizes.get(path) != size and not once:
                sizes[path] = size  # look again next round
                continue
            sizes.pop(path, None)
            kind = file_kind(path.name)

            def create(name: str = path.name, k: str = kind) -> int:
                with engine.begin() as conn:
                    return store.create_job(conn, source, name, k)

            job_id = await asyncio.to_thread(create)
            status = await run_import_job(engine, edge, job_id, source, path, kind)
            target = (done_dir if status == "done" else failed_dir) / f"{job_id}-{path.name}"
            shutil.move(str(path), target)
            log.info("import job %s (%s): %s → %s", job_id, path.name, status, target)
            jobs.append(job_id)
        if once:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    return jobs
