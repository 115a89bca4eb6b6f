"""English postcode districts, upper-tier councils and regions, read once from the packaged data."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from contracts.geography.errors import (
    UnknownCouncilError,
    UnknownDistrictError,
    UnknownRegionError,
)


@dataclass(frozen=True)
class District:
    """A postcode district (outward code, e.g. LA9) with its centroid, council and region."""

    code: str
    lat: float
    lon: float
    authority_code: str
    region_code: str


@dataclass(frozen=True)
class Council:
    """An upper-tier council (children's services authority) with its region and centroid."""

    code: str
    name: str
    region_code: str
    region_name: str
    lat: float
    lon: float


def _read_rows(name: str) -> list[dict[str, str]]:
    text = files("contracts.geography").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def normalise_code(code: str) -> str:
    """Upper case, with no whitespace: ' la9 ' -> 'LA9'."""
    return "".join(code.split()).upper()


@cache
def _districts() -> dict[str, District]:
    return {
        row["district"]: District(
            code=row["district"],
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            authority_code=row["authority_code"],
            region_code=row["region_code"],
        )
        for row in _read_rows("districts.csv")
    }


@cache
def _councils() -> dict[str, Council]:
    return {
        row["code"]: Council(
            code=row["code"],
            name=row["name"],
            region_code=row["region_code"],
            region_name=row["region_name"],
            lat=float(row["lat"]),
            lon=float(row["lon"]),
        )
        for row in _read_rows("councils.csv")
    }


def district(code: str) -> District:
    """The postcode district with this outward code; raises UnknownDistrictError."""
    try:
        return _districts()[normalise_code(code)]
    except KeyError:
        raise UnknownDistrictError(code) from None


def is_known_district(code: str) -> bool:
    return normalise_code(code) in _districts()


def districts() -> tuple[District, ...]:
    """Every English postcode district in the dataset, in postcode order."""
    return tuple(_districts().values())


def council(code: str) -> Council:
    """The upper-tier council with this ONS code; raises UnknownCouncilError."""
    try:
        return _councils()[normalise_code(code)]
    except KeyError:
        raise UnknownCouncilError(code) from None


def is_known_council(code: str) -> bool:
    return normalise_code(code) in _councils()


def councils() -> tuple[Council, ...]:
    """Every English upper-tier council, in ONS code order."""
    return tuple(_councils().values())


@cache
def _regions() -> dict[str, str]:
    return dict(sorted({c.region_code: c.region_name for c in _councils().values()}.items()))


def regions() -> dict[str, str]:
    """English regions: ONS code -> name."""
    return dict(_regions())


def councils_in_region(region_code: str) -> tuple[Council, ...]:
    """The region's upper-tier councils; raises UnknownRegionError."""
    code = normalise_code(region_code)
    if code not in _regions():
        raise UnknownRegionError(region_code)
    return tuple(c for c in _councils().values() if c.region_code == code)


@cache
def _straddling() -> frozenset[str]:
    """The districts whose postcode units are not all in the council they are assigned to."""
    return frozenset(
        row["district"]
        for row in _read_rows("districts.csv")
        if float(row["authority_share"]) < 1.0
    )


def straddles_councils(code: str) -> bool:
    """Whether part of the district lies outside the council it is assigned to; raises
    UnknownDistrictError."""
    return district(code).code in _straddling()
