"""The fault suite: a package, so that its broker, database and services (package-scoped
fixtures) stop as soon as its last test is done, not at the end of the whole run."""
