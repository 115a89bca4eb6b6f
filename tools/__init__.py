"""Tools around the services, none of them a service: `supervisor` (`nearhome run`), `simulator`
(`nearhome simulate`) and `synthetic`, the one synthetic world the simulator, the benchmarks and
the tests draw their data from."""
