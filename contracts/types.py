"""Constrained field types shared by the event payloads.

Numbers and booleans are strict (no "3" for 3); dates, times and ids parse from their JSON strings.
"""

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    Strict,
)
from pydantic_core import CoreSchema, core_schema

from contracts import geography
from contracts.enums import Need, PlacementType, Sex

_OUTWARD_CODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?")
_ONS_AUTHORITY = re.compile(r"E(06|07|08|09|10|11)[0-9]{6}")
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# A council's own case reference: letters, digits and / _ . - only. No spaces, so a name cannot be
# typed into it as "Firstname Lastname".
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,39}")

# Ofsted's unique reference number: "SC" and six digits for a children's social care setting, or
# six or seven digits for the older and the school-based registrations.
_OFSTED_URN = re.compile(r"SC[0-9]{6}|[0-9]{6,7}")
# A UK telephone number as people write it: digits, spaces, an optional leading +.
_PHONE = re.compile(r"\+?[0-9][0-9 ]{8,17}[0-9]")

_E = TypeVar("_E", bound=StrEnum)

EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2099, 12, 31)


@functools.cache
def _canonical_districts() -> frozenset[str]:
    """The districts as `_postcode_district` returns them: each such value is returned as given."""
    return frozenset(d.code for d in geography.districts() if _OUTWARD_CODE.fullmatch(d.code))


@functools.cache
def _canonical_councils() -> frozenset[str]:
    """The council codes as `_authority_code` returns them: each such value is returned as given."""
    return frozenset(c.code for c in geography.councils() if _ONS_AUTHORITY.fullmatch(c.code))


def _postcode_district(value: str) -> str:
    if value in _canonical_districts():
        return value  # as every event written by the exchange has it: one set lookup
    code = value.strip().upper()
    if not _OUTWARD_CODE.fullmatch(code):
        # The value is not echoed: a full postcode may be a child's address, and errors get logged.
        raise ValueError("not a postcode district: give the outward code only, such as LA9 or PR8")
    if not geography.is_known_district(code):
        raise ValueError("not a postcode district in England")
    return code


def _authority_code(value: str) -> str:
    if value in _canonical_councils():
        return value  # as every event written by the exchange has it: one set lookup
    code = value.strip().upper()
    if not _ONS_AUTHORITY.fullmatch(code):
        raise ValueError(f"{value!r} is not an ONS council code such as E06000064")
    if not geography.is_known_council(code):
        raise ValueError(f"{code!r} is not an upper-tier council in England")
    return code


def _whole_match(pattern: re.Pattern[str], problem: str) -> AfterValidator:
    """Lets through only a value that `pattern` matches whole; else `problem` says why (with the
    value where it names `{value!r}`)."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(problem.format(value=value))
        return value

    return AfterValidator(check)


@dataclass(frozen=True)
class _Checked:
    """Pydantic's own constraints (a `pattern`, bounds `ge` and `le`) checked after the type's
    other checks, refusing with `problem` as a ValueError raised by a validator would (the same
    error type and message), without calling into Python for every value.

    A problem that quotes the value cannot be said this way: those stay `_whole_match`.
    """

    problem: str
    pattern: str | None = None
    ge: date | None = None
    le: date | None = None

    def __get_pydantic_core_schema__(
        self, source: type[object], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        checked = handler(source)
        constraints = {"pattern": self.pattern, "ge": self.ge, "le": self.le}
        constrained = core_schema.custom_error_schema(
            {**checked, **{k: v for k, v in constraints.items() if v is not None}},
            "value_error",
            custom_error_context={"error": self.problem},
        )
        return core_schema.chain_schema([checked, constrained])


def _whole(pattern: re.Pattern[str]) -> str:
    """`pattern` anchored, to match a value whole (the Rust engine's `$` is the very end)."""
    return f"^(?:{pattern.pattern})$"


_SLUG_ONLY = _whole_match(
    _SLUG, "{value!r} is not a slug: lower-case letters and digits joined by '-'"
)
_REFERENCE_ONLY = _Checked(
    "a reference is the council's own opaque case reference: 1-40 letters, digits "
    "and / _ . - (no spaces, never a name)",
    pattern=_whole(_REFERENCE),
)
_OFSTED_URN_ONLY = _whole_match(
    _OFSTED_URN, "{value!r} is not an Ofsted URN: SC and 6 digits, or 6 or 7 digits"
)
_PHONE_ONLY = _Checked(
    "a telephone number is 10-19 digits, spaces allowed, + allowed first", pattern=_whole(_PHONE)
)
_ONE_LINE = _Checked("must be a single line", pattern=r"^[^\r\n]*$")


# The value is not echoed: a referral's dates are a child's details, and errors get logged.
_SENSIBLE = _Checked(
    f"must be from {EARLIEST_DATE} to {LATEST_DATE}", ge=EARLIEST_DATE, le=LATEST_DATE
)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _integral(value: object) -> object:
    # JSON has one number type: 3.0 is the integer 3 (as JSON Schema says), but "3" is no number.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sorted_unique(values: tuple[_E, ...]) -> tuple[_E, ...]:
    # Sets travel as sorted lists so that the same state always serialises to the same bytes.
    return tuple(sorted(set(values)))


# What the API documents say of these (JSON Schema patterns of what the checks let through; the
# checks also want the district or council to exist, and the case of letters not to matter).
_DISTRICT_PATTERN = r"^\s*[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s*$"
_AUTHORITY_PATTERN = r"^\s*[Ee](06|07|08|09|10|11)[0-9]{6}\s*$"

PostcodeDistrict = Annotated[
    str,
    Strict(),
    AfterValidator(_postcode_district),
    Field(
        description="A postcode district (outward code) in England, such as LA9 or PR8",
        json_schema_extra={"pattern": _DISTRICT_PATTERN},
    ),
]
AuthorityCode = Annotated[
    str,
    Strict(),
    AfterValidator(_authority_code),
    Field(
        description="The ONS code of an upper-tier council in England, such as E06000064",
        json_schema_extra={"pattern": _AUTHORITY_PATTERN},
    ),
]
Slug = Annotated[
    str,
    Strict(),
    Field(min_length=2, max_length=64, json_schema_extra={"pattern": f"^{_SLUG.pattern}$"}),
    _SLUG_ONLY,
]
CaseReference = Annotated[
    str, Strict(), Field(json_schema_extra={"pattern": f"^{_REFERENCE.pattern}$"}), _REFERENCE_ONLY
]
OrganisationId = Annotated[str, Strict(), Field(min_length=2, max_length=64)]
ChildAge = Annotated[int, Strict(), Field(ge=0, le=17), BeforeValidator(_integral)]
PositiveCount = Annotated[int, Strict(), Field(ge=1, le=1000), BeforeValidator(_integral)]
StrictBool = Annotated[bool, Strict()]
OfstedUrn = Annotated[
    str,
    Strict(),
    Field(json_schema_extra={"pattern": f"^({_OFSTED_URN.pattern})$"}),
    _OFSTED_URN_ONLY,
]
TelephoneNumber = Annotated[
    str, Strict(), Field(json_schema_extra={"pattern": f"^{_PHONE.pattern}$"}), _PHONE_ONLY
]
SettingName = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=120, json_schema_extra={"pattern": "^[^\r\n]*$"}),
    _ONE_LINE,
]
SettingBlurb = Annotated[str, Strict(), Field(max_length=600)]
WeeklyFee = Annotated[float, Field(ge=0, le=100_000)]
SensibleDate = Annotated[
    date,
    _SENSIBLE,
    Field(description=f"A date from {EARLIEST_DATE} to {LATEST_DATE}"),
]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
Miles = Annotated[float, Field(ge=0, le=1000)]
Needs = Annotated[tuple[Need, ...], AfterValidator(_sorted_unique)]
Sexes = Annotated[tuple[Sex, ...], Field(min_length=1), AfterValidator(_sorted_unique)]
PlacementTypes = Annotated[
    tuple[PlacementType, ...], Field(min_length=1), AfterValidator(_sorted_unique)
]
