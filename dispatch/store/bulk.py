"""Bulk writes with PostgreSQL's COPY, inside the caller's transaction.

A batch of the pipeline writes ~10 rows per event (case, source record, timeline, audit, outbox).
As an ``executemany`` of INSERTs every row pays the driver's per-statement handling and the
server's per-statement executor start-up; COPY streams the rows through one statement, with
psycopg formatting them in C. Values go in as COPY's text representation: JSON documents are
serialised here (orjson) and geometries as EWKT, which PostGIS parses on input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

import orjson
from geoalchemy2 import Geometry
from psycopg import sql
from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    text,
)


class JsonText(str):
    """A JSON document already serialised (e.g. by pydantic's ``model_dump_json``): written as is."""


def json_text(value: Any) -> str:
    """A JSON document as COPY's (and the engine's) text: orjson, str keys, RFC 3339 datetimes."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def copy_rows(
    conn: Connection, model: type[Any], columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY ``rows`` (values in ``columns`` order) into the table of the mapped class ``model``;
    how many were written. Columns left out take their server defaults (Python-side defaults of
    the model do not apply).

    Columns of type JSON/JSONB take their value serialised by :func:`json_text` (a
    :class:`JsonText` as it is), integer arrays a list of ints (written as an array literal here:
    psycopg's list dumper is Python code, ~20 µs a row for an empty list); the others take None or
    the Python type of the column (str, int, float, bool, aware datetime, date, bytes).

    Datetimes are formatted here, each distinct instant once per call: a batch's rows share a few
    (the transaction's time in every timeline line and audit entry, deadlines memoised per
    category), and psycopg's dumper takes ~1.5 µs for every value, ten a new case.
    """
    table = cast(Table, model.__table__)
    types = _copy_types(table, tuple(columns))
    json_cols = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    int_array_cols = [
        i
        for i, c in enumerate(columns)
        if isinstance(t := table.c[c].type, ARRAY) and isinstance(t.item_type, Integer)
    ]
    time_cols = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, DateTime)]
    times: dict[datetime, str] = {}
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    n = 0
    with raw.cursor() as cur, cur.copy(statement) as copy:
        if types is not None:
            copy.set_types(types)
        for row in rows:
            if json_cols or int_array_cols or time_cols:
                row = list(row)
                for i in time_cols:
                    if isinstance(t := row[i], datetime):
                        row[i] = times.get(t) or times.setdefault(t, t.isoformat())
                for i in json_cols:
                    if row[i] is not None and not isinstance(row[i], JsonText):
                        row[i] = json_text(row[i])
                for i in int_array_cols:
                    if row[i] is not None:
                        row[i] = "{" + ",".join(str(int(v)) for v in row[i]) + "}"
            copy.write_row(row)
            n += 1
    return n


@cache
def _copy_types(table: Table, columns: tuple[str, ...]) -> list[str] | None:
    """The type psycopg formats each column's values as (None: let it look at every value).

    Given up front, psycopg formats a row with one dumper per column instead of choosing one for
    each value (a datetime's choice alone costs about a microsecond). In text COPY the server
    reads each field with the column's own input function, so ``text`` serves every column whose
    value is already a string here: JSON, integer arrays, datetimes, geometries as EWKT."""
    out = [_copy_type(table.c[c]) for c in columns]
    return None if None in out else cast(list[str], out)


def _copy_type(col: Column[Any]) -> str | None:
    t = col.type
    if isinstance(t, JSON | Geometry | String | DateTime) or (
        isinstance(t, ARRAY) and isinstance(t.item_type, Integer)
    ):
        return "text"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, Integer):
        return "int8"
    if isinstance(t, Float):
        return "float8"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, LargeBinary):
        return "bytea"
    return None


def copy_dicts(conn: Connection, model: type[Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """:func:`copy_rows` for rows given as dicts that all have the same keys."""
    if not rows:
        return 0
    columns = list(rows[0])
    return copy_rows(conn, model, columns, ([r[c] for c in columns] for r in rows))


def reserve_ids(conn: Connection, model: type[Any], n: int) -> list[int]:
    """``n`` fresh values of the serial ``id`` of ``model``'s table, ascending, for rows about to be
    COPYed with their ids (one query, where an INSERT … RETURNING would make the driver build a
    statement as large as the batch)."""
    table = cast(Table, model.__table__)
    return list(conn.scalars(_RESERVE_IDS, {"table": table.name, "n": n}))


# The sequence is looked up once (a catalog search, which in the select list would run per id).
_RESERVE_IDS = text(
    """
    WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:table, 'id') AS regclass) AS seq)
    SELECT nextval(s.seq) FROM s, generate_series(1, :n) ORDER BY 1
    """
)
