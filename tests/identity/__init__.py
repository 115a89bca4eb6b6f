"""The identity suite: NearHome's services against a real Keycloak server. A package, so that the
server (a package-scoped fixture, started once for every test here) stops as soon as the last
test here is done, not at the end of the whole run."""
