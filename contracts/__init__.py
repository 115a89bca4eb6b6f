"""NearHome's shared contracts: events, enums, topics and reference geography. Pure data, no I/O."""
