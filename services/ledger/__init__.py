"""The ledger service: live capacity per footprint, counted once from the events."""
