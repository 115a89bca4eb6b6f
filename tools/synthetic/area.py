"""Where the synthetic world is: areas and their councils, how big each council is, and where in
it people live.

The simulator works on one area (a region, a council or a collaborative); the benchmarks and the
event history spread over England, the North West most densely. Both draw from the same pools of
postcode districts, in the order the packaged geography lists them, so a seed keeps its meaning.
"""

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from contracts import geography
from tools.synthetic import figures


class UnknownAreaError(ValueError):
    """Not a region, council or collaborative the synthetic world knows."""


def slug(name: str) -> str:
    """'St. Helens' -> 'st-helens'; 'Yorkshire and The Humber' -> 'yorkshire-and-the-humber'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass(frozen=True, slots=True)
class Area:
    """A footprint to simulate: its id (ONS code or collaborative slug), name and councils."""

    id: str
    name: str
    councils: tuple[geography.Council, ...]


def region_slugs() -> dict[str, str]:
    """Region slugs ('north-west') -> ONS region codes ('E12000002')."""
    return {slug(name): code for code, name in geography.regions().items()}


def resolve_area(name: str) -> Area:
    """A region slug or code, a council's ONS code or name slug, or a collaborative's slug."""
    wanted = name.strip()
    by_slug = {**region_slugs(), **{slug(c.name): c.code for c in geography.councils()}}
    footprint_id = by_slug.get(wanted.lower(), wanted)
    try:
        found = geography.footprint(footprint_id)
    except geography.UnknownFootprintError:
        regions = ", ".join(region_slugs())
        raise UnknownAreaError(
            f"unknown area {name!r}: give a region ({regions}), an ONS region or council code, "
            "a council name such as westmorland-and-furness, or a collaborative's slug"
        ) from None
    councils = tuple(sorted((geography.council(c) for c in found.member_councils), key=_code))
    return Area(found.id, found.name, councils)


def _code(council: geography.Council) -> str:
    return council.code


@cache
def _postcodes_by_district() -> dict[str, int]:
    # contracts.geography keeps each district's count of postcodes in its data but does not expose
    # it; it is the best population proxy we have, so it is read from the packaged file here.
    text = files("contracts.geography").joinpath("data", "districts.csv").read_text("utf-8")
    return {row["district"]: int(row["postcodes"]) for row in csv.DictReader(io.StringIO(text))}


@cache
def england_districts() -> tuple[geography.District, ...]:
    """Every postcode district of a council the exchange knows, in the geography's order."""
    return tuple(d for d in geography.districts() if geography.is_known_council(d.authority_code))


@cache
def districts_in_region(region_code: str) -> tuple[geography.District, ...]:
    return tuple(d for d in england_districts() if d.region_code == region_code)


@cache
def _districts_by_council() -> dict[str, tuple[tuple[str, int], ...]]:
    postcodes = _postcodes_by_district()
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for district in england_districts():
        found[district.authority_code].append((district.code, postcodes.get(district.code, 1)))
    return {code: tuple(districts) for code, districts in found.items()}


def districts_of(council_code: str) -> tuple[tuple[str, int], ...]:
    """The council's postcode districts, each with its count of postcodes (a population weight)."""
    return _districts_by_council()[council_code]


@cache
def district_codes_of(council_code: str) -> tuple[str, ...]:
    return tuple(code for code, _ in districts_of(council_code))


@cache
def council_codes(region_code: str | None = None) -> tuple[str, ...]:
    """The councils with postcode districts (in `region_code` only, if given), sorted by code."""
    districts = england_districts() if region_code is None else districts_in_region(region_code)
    return tuple(sorted({d.authority_code for d in districts}))


@cache
def region_of(council_code: str) -> str:
    return geography.council(council_code).region_code


@cache
def _england_postcodes() -> int:
    return sum(_postcodes_by_district().values())


def children_looked_after(council_code: str) -> int:
    """A rough count of the council's looked-after children (see figures.py for the rule)."""
    known = figures.KNOWN_CHILDREN_LOOKED_AFTER.get(council_code)
    if known is not None:
        return known
    postcodes = sum(count for _, count in districts_of(council_code))
    return round(figures.ENGLAND_CHILDREN_LOOKED_AFTER * postcodes / _england_postcodes())
