"""Sorting and paging for the console's tables.

Two kinds of table:

* a **summary** the domain answers whole (a patient's systems, a registry):
  ``Sort`` from ``?sort=<key>&dir=asc|desc``, ``sort_rows`` orders it, and
  ``sort_url`` links each column header (keyboard-usable links, the current
  column marked with ``aria-sort``: macros.html ``sort_header``);
* a **report's events**, paged by the report's own keyset cursor in its
  fixed order: ``Pager`` links the first and the next page (``?cursor=``; a
  cursor carries no PHI) and numbers the pages (``?page=``). Sorting those
  in the browser would sort one page only, so they are not sortable.

``url_with`` keeps the other query parameters (filters) of the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request

T = TypeVar("T")


def url_with(request: Request, **changes: str | int | None) -> str:
    """This page's path and query with ``changes`` applied (``None`` removes a parameter)."""
    params = dict(request.query_params)
    for name, value in changes.items():
        if value is None or value == "":
            params.pop(name, None)
        else:
            params[name] = str(value)
    query = urlencode(sorted(params.items()))
    return request.url.path + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Sort:
    key: str
    descending: bool

    @classmethod
    def from_request(cls, request: Request, allowed: Iterable[str], default: str, descending: bool = False) -> Sort:
        """The sort the page asks for; an unknown column falls back to ``default``."""
        key = request.query_params.get("sort", default)
        if key not in set(allowed):
            return cls(default, descending)
        direction = request.query_params.get("dir")
        return cls(key, direction == "desc" if direction in ("asc", "desc") else descending)


def sort_rows(rows: Sequence[T], sort: Sort, keys: Mapping[str, Callable[[T], Any]]) -> list[T]:
    """``rows`` ordered by ``sort`` (stable: ties keep the domain's order)."""
    return sorted(rows, key=keys[sort.key], reverse=sort.descending)


def sort_url(request: Request, sort: Sort, key: str) -> str:
    """The header link of column ``key``: sorts by it, or flips it when it is the current one."""
    descending = not sort.descending if sort.key == key else False
    return url_with(request, sort=key, dir="desc" if descending else "asc")


@dataclass(frozen=True)
class Pager:
    number: int
    first_url: str | None
    next_url: str | None

    @classmethod
    def for_cursor(cls, request: Request, next_cursor: str | None) -> Pager:
        """Links for a keyset-paged table: page 1 has no "first", the last page no "next"."""
        number = _page_number(request)
        first = url_with(request, cursor=None, page=None) if number > 1 else None
        following = url_with(request, cursor=next_cursor, page=number + 1) if next_cursor else None
        return cls(number, first, following)


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


@dataclass(frozen=True)
class OffsetPage:
    """One page of a summary table read whole (``rows``: this page's), with
    links to the first, previous, next and last pages (``?<param>=``)."""

    rows: list[Any]
    number: int
    pages: int
    total: int
    first_url: str | None
    previous_url: str | None
    next_url: str | None
    last_url: str | None


def offset_page(request: Request, rows: Sequence[T], size: int, param: str = "page", anchor: str = "") -> OffsetPage:
    """``rows`` cut to the page ``?<param>=`` names (out of range: the nearest page)."""
    total = len(rows)
    pages = max(1, -(-total // size))
    raw = request.query_params.get(param, "1")
    number = min(int(raw), pages) if raw.isdigit() and int(raw) > 0 else 1

    def link(n: int) -> str:
        return url_with(request, **{param: None if n == 1 else n}) + anchor

    return OffsetPage(
        list(rows[(number - 1) * size : number * size]),
        number,
        pages,
        total,
        link(1) if number > 1 else None,
        link(number - 1) if number > 1 else None,
        link(number + 1) if number < pages else None,
        link(pages) if number < pages else None,
    )
