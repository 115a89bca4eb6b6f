"""The referral's pure rules: when it widens, the sibling rule, merging a change, its lifecycle."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from builders import REFERRAL_DETAILS
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.enums import Need, ReferralOutcome, SearchScope, Sex, Urgency
from contracts.events import ReferralClosed, ReferralOpened, ReferralUpdated, ReferralWidened
from services.authority.domain import (
    ReferralDetails,
    SiblingRuleError,
    WideningPolicy,
    change_referral,
    close_referral,
    is_due_for_widening,
    merge_changes,
    needs_for_sibling_group,
    open_referral,
    widen_at,
    widen_referral,
)
from services.authority.settings import Settings
from services.authority.tables import Referral, ReferralStatus
from services.platform.errors import ConflictError

OPENED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
POLICY = WideningPolicy(emergency=timedelta(hours=4), planned=timedelta(days=5))
DETAILS = ReferralDetails.model_validate({"reference": "SEF-2026-0042", **REFERRAL_DETAILS})


def _opened(
    details: ReferralDetails = DETAILS, chosen: timedelta | None = None
) -> tuple[Referral, ReferralOpened]:
    return open_referral(
        referral_id=uuid4(),
        authority_code="E08000014",
        details=details,
        chosen_widen_after=chosen,
        policy=POLICY,
        now=OPENED,
    )


def _referral(details: ReferralDetails = DETAILS, chosen: timedelta | None = None) -> Referral:
    return _opened(details, chosen)[0]


def _changed(
    referral: Referral, changes: dict[str, Any], now: datetime = OPENED
) -> tuple[Referral, ReferralUpdated]:
    decided = change_referral(referral, changes, POLICY, now)
    assert decided is not None
    return decided


def _problems(error: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {str(problem["loc"][0]) for problem in error.value.errors()}


# --- when a referral widens -----------------------------------------------------------------------


def test_the_settings_default_to_four_hours_for_an_emergency_and_five_days_when_planned() -> None:
    fields = Settings.model_fields

    assert fields["widen_after_emergency"].default == timedelta(hours=4)
    assert fields["widen_after_planned"].default == timedelta(days=5)
    assert fields["widen_check_interval"].default == 60.0
    assert fields["port"].default == 8002


@pytest.mark.parametrize(
    ("urgency", "expected"),
    [
        (Urgency.EMERGENCY, OPENED + timedelta(hours=4)),
        (Urgency.PLANNED, OPENED + timedelta(days=5)),
    ],
)
def test_a_referral_widens_after_its_urgencys_default(urgency: Urgency, expected: datetime) -> None:
    assert widen_at(OPENED, urgency, None, POLICY) == expected


def test_a_councils_own_choice_overrides_the_default() -> None:
    chosen = timedelta(hours=1)

    assert widen_at(OPENED, Urgency.PLANNED, chosen, POLICY) == OPENED + chosen
    assert widen_at(OPENED, Urgency.EMERGENCY, chosen, POLICY) == OPENED + chosen


def test_a_new_referral_is_open_at_version_one_and_widens_by_its_urgency() -> None:
    referral = _referral()

    assert (referral.status, referral.version) == (ReferralStatus.OPEN, 1)
    assert referral.widen_at == OPENED + timedelta(days=5)


def test_opening_a_referral_decides_the_event_carrying_its_whole_state() -> None:
    referral, opened = _opened()

    assert opened == ReferralOpened(
        referral_id=referral.referral_id, authority_code="E08000014", **DETAILS.model_dump()
    )


def test_changing_urgency_moves_the_default_widening_time_but_not_a_chosen_one() -> None:
    later = OPENED + timedelta(minutes=5)

    by_default = change_referral(_referral(), {"urgency": Urgency.EMERGENCY}, POLICY, later)
    chosen = change_referral(
        _referral(chosen=timedelta(hours=30)), {"urgency": Urgency.EMERGENCY}, POLICY, later
    )

    assert by_default is not None
    assert by_default[0].widen_at == OPENED + timedelta(hours=4)
    assert chosen is not None
    assert chosen[0].widen_at == OPENED + timedelta(hours=30)


def test_a_local_open_referral_is_due_to_widen_only_once_its_time_is_up() -> None:
    referral = _referral()

    assert not is_due_for_widening(referral, referral.widen_at - timedelta(seconds=1))
    assert is_due_for_widening(referral, referral.widen_at)


def test_widening_makes_the_search_regional_and_is_never_due_again() -> None:
    referral = _referral()
    now = referral.widen_at

    widened, event = widen_referral(referral, now)

    assert widened.search_scope is SearchScope.REGIONAL
    assert (widened.version, widened.widened_at) == (2, now)
    assert event == ReferralWidened(
        referral_id=referral.referral_id,
        authority_code=referral.authority_code,
        search_scope=SearchScope.REGIONAL,
    )
    assert not is_due_for_widening(widened, now + timedelta(days=30))
    back_to_local = change_referral(widened, {"search_scope": SearchScope.LOCAL}, POLICY, now)
    assert back_to_local is not None
    assert not is_due_for_widening(back_to_local[0], now + timedelta(days=30))
    with pytest.raises(ConflictError):
        widen_referral(widened, now)


def test_regional_and_closed_referrals_are_never_due_to_widen() -> None:
    regional = _referral(DETAILS.model_copy(update={"search_scope": SearchScope.REGIONAL}))
    closed, _ = close_referral(_referral(), ReferralOutcome.PLACED, OPENED)
    much_later = OPENED + timedelta(days=365)

    assert not is_due_for_widening(regional, much_later)
    assert not is_due_for_widening(closed, much_later)


# --- the sibling rule -----------------------------------------------------------------------------


def test_a_sibling_group_gets_the_sibling_group_need() -> None:
    assert needs_for_sibling_group((Need.SEMH,), 3) == (Need.SEMH, Need.SIBLING_GROUP)


def test_a_lone_child_with_the_sibling_group_need_is_refused() -> None:
    with pytest.raises(SiblingRuleError):
        needs_for_sibling_group((Need.SIBLING_GROUP,), 1)


def test_the_sibling_rule_names_the_needs_field() -> None:
    with pytest.raises(ValidationError) as error:
        ReferralDetails.model_validate(
            {**DETAILS.model_dump(), "needs": ("sibling_group",), "sibling_group_size": 1}
        )

    assert _problems(error) == {"needs"}


_needs = st.lists(st.sampled_from(Need)).map(tuple)
_sizes = st.integers(min_value=1, max_value=12)


@given(needs=_needs, size=_sizes)
def test_the_sibling_group_need_is_present_exactly_when_there_is_a_group(
    needs: tuple[Need, ...], size: int
) -> None:
    if size == 1 and Need.SIBLING_GROUP in needs:
        with pytest.raises(SiblingRuleError):
            needs_for_sibling_group(needs, size)
        return

    result = needs_for_sibling_group(needs, size)

    assert (Need.SIBLING_GROUP in result) == (size > 1)
    assert set(needs) <= set(result)
    assert set(result) - set(needs) <= {Need.SIBLING_GROUP}


# --- merging a change -----------------------------------------------------------------------------


def test_merging_no_change_gives_the_same_details() -> None:
    assert merge_changes(DETAILS, {}) == DETAILS


def test_merging_changes_only_the_named_fields() -> None:
    merged = merge_changes(DETAILS, {"age": 14, "needs": (Need.SELF_HARM, Need.SEMH)})

    assert (merged.age, merged.needs) == (14, (Need.SELF_HARM, Need.SEMH))
    assert merged.model_dump(exclude={"age", "needs"}) == DETAILS.model_dump(
        exclude={"age", "needs"}
    )


def test_a_merge_is_validated_as_a_whole_naming_each_bad_field() -> None:
    with pytest.raises(ValidationError) as error:
        merge_changes(DETAILS, {"age": None, "placement_types": ()})

    assert _problems(error) == {"age", "placement_types"}


def test_a_group_shrinking_to_one_child_loses_the_need_its_size_implied() -> None:
    group = merge_changes(DETAILS, {"sibling_group_size": 2})

    one = merge_changes(group, {"sibling_group_size": 1})

    assert group.needs == (Need.SEMH, Need.SIBLING_GROUP)
    assert one.needs == (Need.SEMH,)


def test_naming_the_sibling_group_need_for_one_child_in_the_same_change_is_refused() -> None:
    group = merge_changes(DETAILS, {"sibling_group_size": 2})

    with pytest.raises(ValidationError) as error:
        merge_changes(group, {"sibling_group_size": 1, "needs": (Need.SIBLING_GROUP,)})

    assert _problems(error) == {"needs"}


_changes = st.fixed_dictionaries(
    {},
    optional={
        "age": st.integers(min_value=0, max_value=17),
        "sex": st.sampled_from(Sex),
        "sibling_group_size": _sizes,
        "needs": _needs.map(lambda needs: tuple(n for n in needs if n is not Need.SIBLING_GROUP)),
        "urgency": st.sampled_from(Urgency),
        "search_scope": st.sampled_from(SearchScope),
        "accept_not_yet_inspected": st.booleans(),
    },
)


@given(changes=_changes)
def test_a_merge_takes_every_named_field_and_is_idempotent(changes: dict[str, Any]) -> None:
    merged = merge_changes(DETAILS, changes)

    for field, value in changes.items():
        if field == "needs":
            assert set(value) <= set(merged.needs)
        else:
            assert getattr(merged, field) == value
    assert merge_changes(merged, changes) == merged
    assert (Need.SIBLING_GROUP in merged.needs) == (merged.sibling_group_size > 1)


# --- the lifecycle --------------------------------------------------------------------------------


def test_a_change_that_changes_nothing_is_no_change() -> None:
    assert change_referral(_referral(), {"age": DETAILS.age}, POLICY, OPENED) is None


def test_a_change_moves_the_version_on() -> None:
    changed = change_referral(_referral(), {"age": 9}, POLICY, OPENED + timedelta(hours=1))

    assert changed is not None
    assert (changed[0].version, changed[0].age) == (2, 9)
    assert changed[0].updated_at == OPENED + timedelta(hours=1)


def test_a_change_decides_an_update_carrying_the_whole_new_state() -> None:
    referral = _referral()

    changed, updated = _changed(referral, {"age": 9, "sibling_group_size": 2})

    assert updated == ReferralUpdated(
        referral_id=referral.referral_id,
        authority_code=referral.authority_code,
        **{
            **DETAILS.model_dump(),
            "age": 9,
            "sibling_group_size": 2,
            "needs": (Need.SEMH, Need.SIBLING_GROUP),
        },
    )
    assert (changed.age, changed.needs) == (updated.age, updated.needs)


def test_a_command_leaves_the_referral_it_was_given_as_it_was() -> None:
    referral = _referral()
    before = referral.model_dump()

    _changed(referral, {"age": 9})
    widen_referral(referral, referral.widen_at)
    close_referral(referral, ReferralOutcome.PLACED, OPENED)

    assert referral.model_dump() == before


def test_a_closed_referral_can_be_neither_closed_again_nor_changed() -> None:
    closed, event = close_referral(_referral(), ReferralOutcome.WITHDRAWN, OPENED)

    assert (closed.status, closed.outcome, closed.version) == (
        ReferralStatus.CLOSED,
        ReferralOutcome.WITHDRAWN,
        2,
    )
    assert event == ReferralClosed(
        referral_id=closed.referral_id,
        authority_code=closed.authority_code,
        outcome=ReferralOutcome.WITHDRAWN,
    )
    with pytest.raises(ConflictError, match="closed"):
        close_referral(closed, ReferralOutcome.PLACED, OPENED)
    with pytest.raises(ConflictError, match="closed"):
        change_referral(closed, {"age": 9}, POLICY, OPENED)
