"""Run by the check tools' own venv (`deploy/check-requirements.txt`), never imported by the
project: YAML into JSON, and rendered objects validated against the Kubernetes schemas
(kubernetes-validate) and the vendored CRD schemas (`deploy/schemas/`, jsonschema).

    helper.py yaml <file>...                       every document of each file, as JSON
    helper.py validate <version> <schemas> <file>  findings for a JSON list of objects

Only the standard library is imported at the top: the project's mypy sees the tools' packages
as modules loaded by name.
"""

import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _yaml(paths: list[str]) -> int:
    yaml: Any = importlib.import_module("yaml")
    documents = {
        path: [
            document
            for document in yaml.safe_load_all(Path(path).read_text(encoding="utf-8"))
            if document is not None
        ]
        for path in paths
    }
    sys.stdout.write(json.dumps(documents))
    return 0


def strict(schema: object) -> object:
    """The schema with `additionalProperties: false` wherever the API server would prune: an
    object with `properties`, no `additionalProperties` and no
    `x-kubernetes-preserve-unknown-fields`. A misspelt field is then an error here instead of
    silently dropped by the cluster."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def _schema_for(schemas: Path, document: Mapping[str, Any]) -> Path | None:
    group, _, version = str(document.get("apiVersion", "")).rpartition("/")
    if not group:
        return None
    candidate = schemas / group / version / f"{document.get('kind')}.json"
    return candidate if candidate.exists() or (schemas / group).is_dir() else None


def _name(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    return f"{document.get('kind')} {metadata.get('name')} ({document.get('apiVersion')})"


def _validate(version: str, schemas_dir: str, objects_file: str) -> int:
    kubernetes_validate: Any = importlib.import_module("kubernetes_validate")
    jsonschema: Any = importlib.import_module("jsonschema")
    schemas = Path(schemas_dir)
    documents: list[Mapping[str, Any]] = json.loads(Path(objects_file).read_text(encoding="utf-8"))
    findings: list[dict[str, str]] = []
    for document in documents:
        path = _schema_for(schemas, document)
        if path is not None:
            if not path.exists():
                findings.append(
                    {
                        "object": _name(document),
                        "error": f"no vendored schema {path.relative_to(schemas)} (the CRD's "
                        "release serves no such version or kind)",
                    }
                )
                continue
            schema = strict(json.loads(path.read_text(encoding="utf-8")))
            validator = jsonschema.Draft7Validator(schema)
            findings += [
                {
                    "object": _name(document),
                    "error": f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: "
                    f"{error.message}",
                }
                for error in sorted(validator.iter_errors(document), key=str)
            ]
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path) or "(top)"
            findings.append({"object": _name(document), "error": f"{where}: {error.message}"})
        except (
            kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.InvalidSchemaError,
        ) as error:
            findings.append({"object": _name(document), "error": f"no schema: {error}"})
    sys.stdout.write(json.dumps(findings))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "yaml":
        return _yaml(argv[1:])
    if len(argv) == 4 and argv[0] == "validate":
        return _validate(argv[1], argv[2], argv[3])
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
