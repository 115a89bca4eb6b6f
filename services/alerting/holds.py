"""Beds of a vacancy held by offers (docs/domain.md, "From alert to placement"), pure.

An offer (`PlacementOffered`) holds beds of one vacancy for one referral until it expires or is
withdrawn (released) or a placement starts from it (taken). Held and taken beds are no longer the
vacancy's to alert other councils about; the referral an untaken hold is for may still count on
its own held beds.
"""

from dataclasses import dataclass, replace
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Hold:
    request_id: UUID
    vacancy_id: UUID
    referral_id: UUID
    beds: int
    taken: bool = False  # a placement started from the offer: the beds are gone for good


class Holds:
    """The holds on open vacancies, by request and by vacancy."""

    __slots__ = ("_by_referral", "_by_request", "_by_vacancy")

    def __init__(self) -> None:
        self._by_request: dict[UUID, Hold] = {}
        self._by_vacancy: dict[UUID, dict[UUID, Hold]] = {}
        self._by_referral: dict[UUID, dict[UUID, Hold]] = {}

    def all(self) -> list[Hold]:
        return list(self._by_request.values())

    def get(self, request_id: UUID) -> Hold | None:
        return self._by_request.get(request_id)

    def add(self, hold: Hold) -> None:
        """File the hold, replacing any earlier one of the same request."""
        self.remove(hold.request_id)
        self._by_request[hold.request_id] = hold
        self._by_vacancy.setdefault(hold.vacancy_id, {})[hold.request_id] = hold
        self._by_referral.setdefault(hold.referral_id, {})[hold.request_id] = hold

    def remove(self, request_id: UUID) -> Hold | None:
        hold = self._by_request.pop(request_id, None)
        if hold is not None:
            _discard(self._by_vacancy, hold.vacancy_id, request_id)
            _discard(self._by_referral, hold.referral_id, request_id)
        return hold

    def take(self, request_id: UUID) -> Hold | None:
        """The hold, now taken by a placement; None when there is no such hold."""
        hold = self._by_request.get(request_id)
        if hold is None:
            return None
        taken = replace(hold, taken=True)
        self.add(taken)
        return taken

    def remove_vacancy(self, vacancy_id: UUID) -> list[Hold]:
        """The vacancy's holds, gone with it."""
        holds = list(self._by_vacancy.get(vacancy_id, {}).values())
        for hold in holds:
            self.remove(hold.request_id)
        return holds

    def beds_held(self, vacancy_id: UUID, *, sparing: UUID | None = None) -> int:
        """Beds of the vacancy held or taken, leaving out the untaken holds for `sparing`."""
        of_vacancy = self._by_vacancy.get(vacancy_id)
        if of_vacancy is None:
            return 0
        return sum(
            hold.beds for hold in of_vacancy.values() if hold.taken or hold.referral_id != sparing
        )

    def referrals_holding(self, vacancy_id: UUID) -> set[UUID]:
        """The referrals an untaken hold on the vacancy is for."""
        of_vacancy = self._by_vacancy.get(vacancy_id)
        if of_vacancy is None:
            return set()
        return {hold.referral_id for hold in of_vacancy.values() if not hold.taken}

    def vacancies_held_for(self, referral_id: UUID) -> set[UUID]:
        """The vacancies with an untaken hold for the referral."""
        of_referral = self._by_referral.get(referral_id)
        if of_referral is None:
            return set()
        return {hold.vacancy_id for hold in of_referral.values() if not hold.taken}


def _discard(index: dict[UUID, dict[UUID, Hold]], key: UUID, request_id: UUID) -> None:
    holds = index[key]
    del holds[request_id]
    if not holds:
        del index[key]
