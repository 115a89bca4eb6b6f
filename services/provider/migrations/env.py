from services.platform.migrations import run_migrations
from services.provider.store import METADATA

run_migrations(METADATA)
