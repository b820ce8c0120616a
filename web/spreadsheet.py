"""Cells of the exported workbooks written as data, never as formulas (CSV/formula injection).

A text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is what a
spreadsheet reads as a formula (OWASP, "CSV Injection"). Category codes and labels can come from
partners, so every export appends its rows through `append_row`: such a text becomes a string cell
(openpyxl would otherwise write ``=…`` as a live ``<f>`` formula) marked with Excel's quote prefix,
so it stays text even when someone edits the cell. The text itself is kept exactly as entered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from openpyxl.cell.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def reads_as_formula(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START)


def text_cell(ws: Worksheet, value: str) -> Cell:
    """A string cell holding ``value`` as it is, even when it reads as a formula."""
    cell = Cell(ws)
    cell.value = value
    cell.data_type = "s"  # openpyxl made "=…" a formula when the value was bound
    cell.quotePrefix = True
    return cell


def append_row(ws: Worksheet, values: Iterable[Any]) -> None:
    """``ws.append(values)`` with every formula-like text written as a plain string cell."""
    ws.append([text_cell(ws, v) if isinstance(v, str) and reads_as_formula(v) else v for v in values])
