"""Write the JSON Schema snapshot of every event's current version to `contracts/schemas/`.

Run after an intended contract change: `.venv/bin/python infra/data/update_schema_snapshots.py`.
The contract tests then hold every later change to these snapshots' compatibility rules.
"""

import json
from pathlib import Path

from contracts.compatibility import schema_of
from contracts.events import EVENT_TYPES

SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


def main() -> None:
    SCHEMAS.mkdir(exist_ok=True)
    for event_type, model in sorted(EVENT_TYPES.items()):
        path = SCHEMAS / f"{event_type}.v{model.schema_version}.json"
        text = json.dumps(schema_of(model), indent=2, sort_keys=True) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(SCHEMAS.parents[1])}")


if __name__ == "__main__":
    main()
