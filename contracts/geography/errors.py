"""Errors raised by the reference geography: each names the code or entry it could not use."""


class UnknownAreaError(KeyError):
    """A code that names no area of the kind asked for."""

    kind = "area"

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown {self.kind} {code!r}")
        self.code = code

    def __str__(self) -> str:
        # KeyError would quote the whole message; a plain sentence reads better in logs and 4xxs.
        return str(self.args[0])


class UnknownDistrictError(UnknownAreaError):
    """Not an English postcode district (outward code) in the dataset."""

    kind = "postcode district"


class UnknownCouncilError(UnknownAreaError):
    """Not the ONS code of an English upper-tier council."""

    kind = "council"


class UnknownRegionError(UnknownAreaError):
    """Not the ONS code of an English region."""

    kind = "region"


class UnknownFootprintError(UnknownAreaError):
    """Not the id of a footprint (council, region or collaborative)."""

    kind = "footprint"


class CollaborativeConfigError(ValueError):
    """collaboratives.toml is malformed or names an unknown council."""
