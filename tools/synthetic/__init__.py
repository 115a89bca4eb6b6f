"""The one synthetic world the simulator, the benchmarks and the tests draw their data from.

- `area`: where it is: areas and their councils, postcode districts weighted by population, the
  pools of districts and councils over England.
- `figures`: the sourced figures and assumed mixes it is built from.
- `population`: drawing settings (type, size, ages, sexes, needs, rating), children and the
  councils that place them, in those proportions; the shared vocabulary (`draw`, `FOSTERING` …).
- `world`: its records: settings with placements and vacancies, referrals, and whether one fits.
- `england`: an open market of referrals and vacancies over England (the matching benchmarks).
- `history`: the world as a valid event history (`SyntheticHistory`, `topic_of`; the ledger's
  benchmark and tests).

The simulator (`tools.simulator.plan`) turns the same settings and referrals into API requests.
Each generator takes a seed and draws in a fixed order, so a seed always gives the same data.
"""
