"""`nearhome run`: the four services (and, for a demo, the simulator) under one supervisor."""
