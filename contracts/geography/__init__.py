"""Reference geography for England: postcode districts, upper-tier councils, regions, footprints.

Pure functions over data packaged beside this module (see NOTICE); the data is read on first use,
once, never at import.
"""

from contracts.geography._areas import (
    Council,
    District,
    council,
    councils,
    councils_in_region,
    district,
    districts,
    is_known_council,
    is_known_district,
    regions,
    straddles_councils,
)
from contracts.geography._distance import (
    EARTH_RADIUS_MILES,
    LOCAL_RADIUS_MILES,
    NEIGHBOUR_RADIUS_MILES,
    Position,
    distance_miles,
    is_local,
    lies_in_council,
    miles_apart,
    position,
)
from contracts.geography._footprints import (
    Footprint,
    FootprintKind,
    footprint,
    footprints,
    footprints_containing,
    parse_collaboratives,
)
from contracts.geography.errors import (
    CollaborativeConfigError,
    UnknownAreaError,
    UnknownCouncilError,
    UnknownDistrictError,
    UnknownFootprintError,
    UnknownRegionError,
)

__all__ = [
    "EARTH_RADIUS_MILES",
    "LOCAL_RADIUS_MILES",
    "NEIGHBOUR_RADIUS_MILES",
    "CollaborativeConfigError",
    "Council",
    "District",
    "Footprint",
    "FootprintKind",
    "Position",
    "UnknownAreaError",
    "UnknownCouncilError",
    "UnknownDistrictError",
    "UnknownFootprintError",
    "UnknownRegionError",
    "council",
    "councils",
    "councils_in_region",
    "distance_miles",
    "district",
    "districts",
    "footprint",
    "footprints",
    "footprints_containing",
    "is_known_council",
    "is_known_district",
    "is_local",
    "lies_in_council",
    "miles_apart",
    "parse_collaboratives",
    "position",
    "regions",
    "straddles_councils",
]
