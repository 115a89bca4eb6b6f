from services.platform.migrations import run_migrations
from services.provider.tables import METADATA

run_migrations(METADATA)
