"""The figures the synthetic world is built from, each with its source.

Sources: the councils' published sufficiency strategies (Westmorland and Furness 2025, Sefton
2023, Cumbria 2021) and national statistics, summarised in docs/domain.md ("Figures behind the
simulated region"). Where a figure is our own assumption, the comment says so.
"""

from dataclasses import dataclass

from contracts.enums import DeclineReason, OfstedRating, PlacementEndReason, PlacementType

NORTH_WEST = "E12000002"
WESTMORLAND_AND_FURNESS = "E06000064"
SEFTON = "E08000014"

# England: 80,080 children looked after (Mar 2020). A council's own figure is not in our data, so
# it is England's total shared by the council's count of postcodes (a population proxy that
# overstates sparse rural councils a little), except where a seed gives the council's own figure.
ENGLAND_CHILDREN_LOOKED_AFTER = 80_080
KNOWN_CHILDREN_LOOKED_AFTER = {
    WESTMORLAND_AND_FURNESS: 261,  # March 2025
    SEFTON: 620,  # October 2023
}

# England: 72% fostered, 13% in homes/secure/semi-independent (Mar 2020); W&F 63% fostered;
# Sefton about 15% in residential care and 16% with parents (so about 60% fostered).
FOSTERED_SHARE = 0.72
FOSTERED_SHARE_BY_COUNCIL = {WESTMORLAND_AND_FURNESS: 0.63, SEFTON: 0.60}
IN_HOMES_SHARE = 0.13
# Kinship (family and friends) care is arranged outside the exchange: our assumption, a fifth of
# fostered children.
FOSTERED_THROUGH_THE_EXCHANGE = 0.8
# About 44,500 fostering households for about 57,700 fostered children: 1.3 children a household.
CHILDREN_PER_FOSTERING_HOUSEHOLD = 1.3
# Households approved for 1, 2 or 3 children (our assumption; mean 1.75 places).
FOSTER_PLACES_WEIGHTS = {1: 45, 2: 35, 3: 20}
# Councils' own carers versus independent fostering agencies (our assumption for most councils;
# Sefton's IFA placements overtook its in-house ones in 2022).
IN_HOUSE_FOSTERING_SHARE = 0.6
IN_HOUSE_FOSTERING_SHARE_BY_COUNCIL = {SEFTON: 0.45}

# 12,732 children's home places in England (Mar 2021), a quarter of them in the North West, for
# about 10,400 children in homes: 1.05 places a child outside the North West, 2.3 inside it.
HOME_PLACES_PER_CHILD_IN_HOMES = 1.05
HOME_PLACES_PER_CHILD_IN_HOMES_BY_REGION = {NORTH_WEST: 2.3}
# New homes average 3.3 places; W&F's run from solo to 6 beds (78 places in 25 homes, 3.1 each);
# Sefton's 25 independent homes have 103 beds (4.1 each).
HOME_PLACES_WEIGHTS = {1: 14, 2: 14, 3: 22, 4: 26, 5: 14, 6: 10}
# Councils' own homes: a share of places (our assumption); Sefton's are not in operation.
IN_HOUSE_HOME_PLACES_SHARE = 0.15

# W&F: 18 children in supported accommodation of 261 (7%), 4 registered providers.
SUPPORTED_ACCOMMODATION_PLACES_PER_CHILD = 0.07
# W&F: 34 residential special school places (about 0.13 a child, a high figure: four schools with
# homes on site); England had 126 such schools. Our assumption elsewhere: 0.025 a child.
SCHOOL_PLACES_PER_CHILD = 0.025
# W&F: two short-breaks homes with 11 beds for children with severe learning disabilities (0.04
# a child); elsewhere our assumption is a quarter of that, as short breaks churn fast.
SHORT_BREAK_PLACES_PER_CHILD = 0.01


@dataclass(frozen=True, slots=True)
class Provision:
    """Settings of one kind and the places they have in all (sizes are drawn to that total)."""

    settings: int
    places: int


@dataclass(frozen=True, kw_only=True, slots=True)
class KnownMarket:
    """A council's settings as its sufficiency strategy counts them (None: the generic rule)."""

    independent_homes: Provision
    in_house_homes: Provision
    in_house_households: int | None = None
    ifa_households: int | None = None
    supported_accommodation: Provision | None = None
    schools: Provision | None = None
    short_breaks: Provision | None = None


KNOWN_MARKETS = {
    WESTMORLAND_AND_FURNESS: KnownMarket(
        # 25 external homes (solo to 6 beds) with 78 registered places.
        independent_homes=Provision(25, 78),
        # One edge-of-care home for up to 4, three long-stay homes for up to 14 in all.
        in_house_homes=Provision(4, 18),
        in_house_households=89,
        ifa_households=30,  # 8 IFAs with about 30 households in the area
        # 4 registered providers; 18 of the council's children in supported accommodation.
        supported_accommodation=Provision(4, 18),
        schools=Provision(4, 34),  # 34 places where the home's sub-type is a residential school
        short_breaks=Provision(2, 11),
    ),
    SEFTON: KnownMarket(
        # 25 independent residential providers with 103 beds; the council's own homes are closed.
        independent_homes=Provision(25, 103),
        in_house_homes=Provision(0, 0),
    ),
}


@dataclass(frozen=True, slots=True)
class TypeFigures:
    """The figures of one kind of setting the simulator runs (`BY_TYPE`)."""

    # Of the beds in a council's settings, the share taken by children of OTHER councils. Sefton:
    # about 283 children from other councils, 44% of all cared-for children living there; W&F:
    # only 11 of the council's 34 children in external homes live in its area, and most children
    # in its external homes come from other councils; 163 of Cumbria's residential places went to
    # others.
    others_share: float
    # The share of a setting's places occupied at the start (our assumption, giving 80-90%
    # overall): homes and schools run full, foster households' second and third places less often.
    occupied: float
    # How often a free bed is offered on the exchange (the rest are filled by other routes or left
    # empty, e.g. for staffing): our assumption.
    offered: float
    # Mean length of a placement in days (our assumption; short breaks are a few nights).
    mean_stay_days: int
    # Settings opening and closing each year, as a share of those of their kind (England's homes
    # grew 5% in 2021 with many closures; foster households come and go faster).
    turnover_per_year: float
    # Weekly fees offered, low and high, in pounds (our assumption, in line with the fees the
    # CMA's 2022 market study reports: about £4,000-£6,000 a week for a children's home, under
    # £1,000 for an independent fostering agency). None: the type offers no fee.
    weekly_fee_gbp: tuple[int, int] | None

    @property
    def mean_empty_days(self) -> float:
        """How long a freed place stays empty on average, so that occupancy holds at `occupied`.

        In a steady state a place is occupied for a stay and empty for a gap, so the occupied
        share is stay / (stay + gap), and gap = stay * (1 - occupied) / occupied.
        """
        return self.mean_stay_days * (1 - self.occupied) / self.occupied


# Columns: others_share, occupied, offered, mean_stay_days, turnover_per_year, weekly_fee_gbp.
BY_TYPE = {
    PlacementType.CHILDRENS_HOME: TypeFigures(0.45, 0.86, 0.7, 420, 0.06, (4000, 7000)),
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: TypeFigures(0.7, 0.82, 0.5, 700, 0.02, (4000, 8000)),
    PlacementType.FOSTER_CARE_IN_HOUSE: TypeFigures(0.03, 0.84, 0.45, 760, 0.1, None),
    PlacementType.FOSTER_CARE_IFA: TypeFigures(0.35, 0.8, 0.6, 640, 0.1, (750, 1100)),
    PlacementType.SUPPORTED_ACCOMMODATION: TypeFigures(0.35, 0.85, 0.6, 240, 0.08, (1000, 2500)),
    PlacementType.SHORT_BREAKS: TypeFigures(0.0, 0.6, 0.4, 5, 0.02, (2000, 4000)),
}
INDEPENDENT_HOMES_OTHERS_SHARE_BY_COUNCIL = {WESTMORLAND_AND_FURNESS: 0.8, SEFTON: 0.45}
# A child of another council comes from the same region this often, else from anywhere in England
# (W&F: 46% of its children within 20 miles; nationally 1 in 5 more than 20 miles away).
OTHERS_FROM_THE_REGION = 0.65

# At the start a free bed is on offer less often than when it is freed: beds freed long ago and
# still empty are mostly not offered (our assumption, matching the share offered in the steady
# state, about a fifth of empty beds).
OFFERED_AT_THE_START = 0.45

# Why placements end, by kind of setting (turned_18 comes from the child's age, not from here).
END_REASON_WEIGHTS = {
    "family": {
        PlacementEndReason.RETURNED_HOME: 30,
        PlacementEndReason.PLANNED_MOVE: 26,
        PlacementEndReason.ADOPTION: 10,
        PlacementEndReason.SPECIAL_GUARDIANSHIP: 12,
        PlacementEndReason.UNPLANNED_ENDING: 15,
        PlacementEndReason.OTHER: 7,
    },
    "residential": {
        PlacementEndReason.PLANNED_MOVE: 45,
        PlacementEndReason.RETURNED_HOME: 20,
        PlacementEndReason.UNPLANNED_ENDING: 28,
        PlacementEndReason.OTHER: 7,
    },
    "short_breaks": {PlacementEndReason.RETURNED_HOME: 100},
}

# Referrals a year per child looked after: about 31,000 children start to be looked after each
# year in England (0.39 a child) plus moves between homes (our assumption: 0.16).
REFERRALS_PER_CHILD_PER_YEAR = 0.55
EMERGENCY_SHARE = 0.2
# Ofsted inspects homes, schools, supported accommodation and short-break homes about yearly.
INSPECTED = (
    PlacementType.CHILDRENS_HOME,
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL,
    PlacementType.SUPPORTED_ACCOMMODATION,
    PlacementType.SHORT_BREAKS,
)

# --- From alert to placement (the simulator's loop) -----------------------------------------------
# Our assumption, not a published figure: a provider declines about three requests in ten that
# reach it through the exchange (each already fits the setting by every matching rule, so fewer are
# refused than the "send to all" referral e-mails providers answer today), and a child with more
# needs is declined more often: the share grows by 0.05 a need, to at most 0.6.
REQUEST_DECLINE_SHARE = 0.3
REQUEST_DECLINE_SHARE_PER_NEED = 0.05
REQUEST_DECLINE_SHARE_AT_MOST = 0.6
# Why providers decline (our assumption, shares in per cent): staffing and the match with the
# children already living there most often, as councils and providers describe it; "other" is left
# out so that every simulated decline teaches the ledger a reason.
DECLINE_REASON_MIX = {
    DeclineReason.STAFFING: 30,
    DeclineReason.MATCHING_RISK: 30,
    DeclineReason.NEEDS_CANNOT_BE_MET: 20,
    DeclineReason.LOCATION_RISK: 12,
    DeclineReason.BED_NO_LONGER_AVAILABLE: 8,
}

# --- England as a whole -------------------------------------------------------------------------
# The matching benchmark's open market and the ledger's event history spread over every council
# and every placement type, not one area's market as above. Their mixes are not derived from the
# figures above; they stay as they were so that a seed still draws the same population, and a
# benchmark's figures stay comparable with earlier runs.

# Children by where they live, roughly England's mix: most fostered, most of the rest in homes.
ENGLAND_PLACEMENT_MIX = {
    PlacementType.FOSTER_CARE_IFA: 32,
    PlacementType.FOSTER_CARE_IN_HOUSE: 30,
    PlacementType.CHILDRENS_HOME: 22,
    PlacementType.SUPPORTED_ACCOMMODATION: 6,
    PlacementType.PARENT_AND_CHILD: 3,
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: 2,
    PlacementType.SHORT_BREAKS: 2,
    PlacementType.SUPPORTED_LODGINGS: 2,
    PlacementType.SECURE_CHILDRENS_HOME: 1,
}
# The open market's grades (our assumption): a little harsher than the simulator's `RATINGS` in
# population.py, which the benchmark's population predates.
ENGLAND_RATING_MIX = {
    OfstedRating.OUTSTANDING: 15,
    OfstedRating.GOOD: 58,
    OfstedRating.REQUIRES_IMPROVEMENT: 15,
    OfstedRating.INADEQUATE: 4,
    OfstedRating.NOT_YET_INSPECTED: 8,
}
# Settings registered in the ledger's history: a mix of kinds, homes first (our assumption: the
# ledger's projections only need every type to occur, in no particular proportion).
HISTORY_SETTING_MIX = {
    PlacementType.CHILDRENS_HOME: 40,
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: 4,
    PlacementType.SECURE_CHILDRENS_HOME: 1,
    PlacementType.FOSTER_CARE_IN_HOUSE: 20,
    PlacementType.FOSTER_CARE_IFA: 20,
    PlacementType.PARENT_AND_CHILD: 3,
    PlacementType.SUPPORTED_ACCOMMODATION: 8,
    PlacementType.SUPPORTED_LODGINGS: 2,
    PlacementType.SHORT_BREAKS: 2,
}
