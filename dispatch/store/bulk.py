"""Bulk writes with PostgreSQL's COPY, inside the caller's transaction.

A batch of the pipeline writes ~10 rows per event (case, source record, timeline, audit, outbox).
As an ``executemany`` of INSERTs every row pays the driver's per-statement handling and the
server's per-statement executor start-up; COPY streams the rows through one statement, with
psycopg formatting them in C. Values go in as COPY's text representation: JSON documents are
serialised here (orjson) and geometries as EWKT, which PostGIS parses on input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
from psycopg import sql
from sqlalchemy import ARRAY, JSON, Connection, Integer, Table


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
    psycopg's list dumper is Python code, ~20 µs a row for an empty list); the others take
    Python values psycopg can format (None, str, numbers, datetimes, lists, bytes).
    """
    table = cast(Table, model.__table__)
    json_cols = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    int_array_cols = [
        i
        for i, c in enumerate(columns)
        if isinstance(t := table.c[c].type, ARRAY) and isinstance(t.item_type, Integer)
    ]
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    n = 0
    with raw.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            if json_cols or int_array_cols:
                row = list(row)
                for i in json_cols:
                    if row[i] is not None and not isinstance(row[i], JsonText):
                        row[i] = json_text(row[i])
                for i in int_array_cols:
                    if row[i] is not None:
                        row[i] = "{" + ",".join(str(int(v)) for v in row[i]) + "}"
            copy.write_row(row)
            n += 1
    return n


def copy_dicts(conn: Connection, model: type[Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """:func:`copy_rows` for rows given as dicts that all have the same keys."""
    if not rows:
        return 0
    columns = list(rows[0])
    return copy_rows(conn, model, columns, ([r[c] for c in columns] for r in rows))
