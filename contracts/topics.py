"""The topic catalogue: every topic the exchange uses, declared once.

Infrastructure code creates the topics from it; producers key each message by the field it names.
"""

from dataclasses import dataclass, replace

DLQ_SUFFIX = ".dlq"
_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its name, its events and the payload field that keys its messages."""

    name: str
    key_field: str
    events: tuple[str, ...]
    partitions: int = 6
    # -1 keeps events forever: the ledger is rebuilt by replaying topics from the start.
    retention_ms: int = -1

    def prefixed(self, prefix: str) -> "TopicSpec":
        """The same topic under `prefix` (a deployment's or a test run's own namespace)."""
        return replace(self, name=prefix + self.name)

    @property
    def dlq(self) -> "TopicSpec":
        """The dead-letter twin: same key, kept for 30 days, no events of its own."""
        return TopicSpec(
            name=f"{self.name}{DLQ_SUFFIX}",
            key_field=self.key_field,
            events=(),
            partitions=1,
            retention_ms=30 * _DAY_MS,
        )


PROVIDER_EVENTS = TopicSpec(
    name="provider.events",
    key_field="setting_id",
    events=(
        "SettingRegistered",
        "SettingUpdated",
        "SettingClosed",
        "VacancyPosted",
        "VacancyConfirmed",
        "VacancyWithdrawn",
        "VacancyExpired",
        "PlacementStarted",
        "PlacementEnded",
        "PlacementOffered",
        "PlacementDeclined",
        "OfferExpired",
        "OfferWithdrawn",
    ),
)
REFERRAL_EVENTS = TopicSpec(
    name="referral.events",
    key_field="referral_id",
    events=(
        "ReferralOpened",
        "ReferralUpdated",
        "ReferralWidened",
        "ReferralClosed",
        "PlacementRequested",
        "RequestWithdrawn",
        "OfferAccepted",
    ),
)
ALERT_EVENTS = TopicSpec(
    name="alert.events",
    key_field="referral_id",
    events=("AlertRaised", "AlertRetracted"),
)

CATALOGUE: tuple[TopicSpec, ...] = (PROVIDER_EVENTS, REFERRAL_EVENTS, ALERT_EVENTS)


def all_topics(prefix: str = "") -> tuple[TopicSpec, ...]:
    """Every topic to create: each catalogue topic followed by its dead-letter twin."""
    return tuple(spec.prefixed(prefix) for topic in CATALOGUE for spec in (topic, topic.dlq))


def topic_for_event(event_type: str) -> TopicSpec:
    """The catalogue topic that carries `event_type`; `KeyError` names an unknown event."""
    for topic in CATALOGUE:
        if event_type in topic.events:
            return topic
    raise KeyError(f"no topic carries event type {event_type!r}")
