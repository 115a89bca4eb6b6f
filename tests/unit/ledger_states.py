"""A ledger's state holding just the records a unit test names."""

from services.ledger.domain import (
    AnswerRecord,
    LedgerState,
    PlacementRecord,
    ReferralRecord,
    RequestRecord,
    SettingRecord,
    VacancyRecord,
)


def ledger_state(*records: object) -> LedgerState:
    state = LedgerState()
    for record in records:
        match record:
            case SettingRecord():
                state.settings[record.setting_id] = record
            case VacancyRecord():
                state.vacancies[record.vacancy_id] = record
            case PlacementRecord():
                state.placements[record.placement_id] = record
            case ReferralRecord():
                state.referrals[record.referral_id] = record
            case RequestRecord():
                state.requests[record.request_id] = record
            case AnswerRecord():
                state.answers[record.request_id] = record
            case _:
                raise TypeError(f"not a ledger record: {record!r}")
    return state
