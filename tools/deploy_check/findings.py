"""One thing `make deploy-check` found wrong: where it is and what is wrong."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """`where` names the file and object (`chart: Deployment nearhome-provider`), `what` the
    problem, in words that say what to change."""

    check: str
    where: str
    what: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.what}"
