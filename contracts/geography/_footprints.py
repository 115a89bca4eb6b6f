"""Footprints: the areas capacity is counted for (a council, a region, a regional collaborative)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

from contracts.geography._areas import council, councils, councils_in_region, regions
from contracts.geography.errors import CollaborativeConfigError, UnknownFootprintError

FootprintKind = Literal["council", "region", "collaborative"]

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_COLLABORATIVE_KEYS = frozenset({"id", "name", "members"})


@dataclass(frozen=True)
class Footprint:
    """An area counted as one: ids are ONS codes for councils and regions, slugs otherwise."""

    id: str
    name: str
    kind: FootprintKind
    member_councils: frozenset[str]


def _collaborative(entry: object, position: int) -> Footprint:
    where = f"collaborative #{position}"
    if not isinstance(entry, dict):
        raise CollaborativeConfigError(f"{where}: expected a table")
    unexpected = set(entry) - _COLLABORATIVE_KEYS
    if unexpected:
        raise CollaborativeConfigError(f"{where}: unexpected keys {sorted(unexpected)}")
    slug, name, members = entry.get("id"), entry.get("name"), entry.get("members")
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise CollaborativeConfigError(f"{where}: id must be a lower-case slug, got {slug!r}")
    where = f"collaborative {slug!r}"
    if not isinstance(name, str) or not name.strip():
        raise CollaborativeConfigError(f"{where}: name must be a non-empty string")
    if not isinstance(members, list) or not members:
        raise CollaborativeConfigError(f"{where}: members must be a non-empty list of ONS codes")
    codes = [m for m in members if isinstance(m, str)]
    if len(codes) != len(members):
        raise CollaborativeConfigError(f"{where}: members must be strings")
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise CollaborativeConfigError(f"{where}: members listed twice: {duplicates}")
    known = {c.code for c in councils()}
    unknown = sorted(c for c in codes if c not in known)
    if unknown:
        raise CollaborativeConfigError(f"{where}: members are not known councils: {unknown}")
    return Footprint(slug, name, "collaborative", frozenset(codes))


def parse_collaboratives(text: str) -> tuple[Footprint, ...]:
    """Collaboratives from TOML text ([[collaborative]] tables); raises CollaborativeConfigError."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CollaborativeConfigError(f"collaboratives.toml is not valid TOML: {error}") from None
    unexpected = set(document) - {"collaborative"}
    if unexpected:
        raise CollaborativeConfigError(f"unexpected top-level keys {sorted(unexpected)}")
    entries = document.get("collaborative", [])
    if not isinstance(entries, list):
        raise CollaborativeConfigError("'collaborative' must be an array of tables")
    found = tuple(_collaborative(entry, n) for n, entry in enumerate(entries, start=1))
    taken = {c.code for c in councils()} | set(regions())
    seen: set[str] = set()
    for collaborative in found:
        if collaborative.id in seen or collaborative.id in taken:
            raise CollaborativeConfigError(f"footprint id {collaborative.id!r} is used twice")
        seen.add(collaborative.id)
    return found


@cache
def _collaboratives() -> tuple[Footprint, ...]:
    resource = files("contracts.geography").joinpath("data", "collaboratives.toml")
    return parse_collaboratives(resource.read_text(encoding="utf-8"))


@cache
def _footprints() -> dict[str, Footprint]:
    by_council = [Footprint(c.code, c.name, "council", frozenset({c.code})) for c in councils()]
    by_region = [
        Footprint(code, name, "region", frozenset(c.code for c in councils_in_region(code)))
        for code, name in regions().items()
    ]
    return {f.id: f for f in (*by_council, *by_region, *_collaboratives())}


def footprints() -> tuple[Footprint, ...]:
    """Every council, then every region, then every collaborative."""
    return tuple(_footprints().values())


def footprint(footprint_id: str) -> Footprint:
    """The footprint with this id; raises UnknownFootprintError."""
    key = footprint_id.strip()
    found = _footprints().get(key) or _footprints().get(key.upper())  # ONS codes in any case
    if found is None:
        raise UnknownFootprintError(footprint_id)
    return found


def footprints_containing(authority_code: str) -> tuple[Footprint, ...]:
    """The council's own footprint, its region, and every collaborative it belongs to."""
    code = council(authority_code).code
    return tuple(f for f in _footprints().values() if code in f.member_councils)
