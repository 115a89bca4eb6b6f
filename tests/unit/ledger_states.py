"""A ledger's state holding just the records a unit test names."""

from services.ledger.domain import (
    AnswerRecord,
    LedgerState,
    PlacementRecord,
    RecordKind,
    ReferralRecord,
    RequestRecord,
    SettingRecord,
    VacancyRecord,
)

# Each kind of record: its kind in the ledger, and the field that is its id.
_KINDS: dict[type, tuple[RecordKind, str]] = {
    SettingRecord: (RecordKind.SETTING, "setting_id"),
    VacancyRecord: (RecordKind.VACANCY, "vacancy_id"),
    PlacementRecord: (RecordKind.PLACEMENT, "placement_id"),
    ReferralRecord: (RecordKind.REFERRAL, "referral_id"),
    RequestRecord: (RecordKind.REQUEST, "request_id"),
    AnswerRecord: (RecordKind.ANSWER, "request_id"),
}


def ledger_state(*records: object) -> LedgerState:
    state = LedgerState()
    for record in records:
        if type(record) not in _KINDS:
            raise TypeError(f"not a ledger record: {record!r}")
        kind, id_field = _KINDS[type(record)]
        state.of_kind(kind)[getattr(record, id_field)] = record
    return state
