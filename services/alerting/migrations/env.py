from services.alerting.tables import METADATA
from services.platform.migrations import run_migrations

run_migrations(METADATA)
