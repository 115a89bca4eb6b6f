"""What the services run on, as opposed to the services themselves.

`infra.local` is the local Kafka broker and PostgreSQL server (`nearhome infra`); `infra/data`
holds scripts run from the repository to rebuild the packaged geography, and is not installed.
"""
