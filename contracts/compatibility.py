"""Schema compatibility: does a new JSON Schema of a payload still read every old payload?

A change is breaking when a field is removed or renamed, retyped, narrowed (an enum value or a union
member dropped) or made required. Adding an optional field, or widening a type, is not.
"""

from typing import Any

Schema = dict[str, Any]


def schema_of(model: type[Any]) -> Schema:
    """The JSON Schema snapshot of a pydantic model, as committed under `contracts/schemas/`."""
    schema: Schema = model.model_json_schema()
    return schema


def _resolve(node: Schema, defs: Schema) -> Schema:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _options(node: Schema, defs: Schema) -> list[Schema]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        return [option for sub in node["anyOf"] for option in _options(sub, defs)]
    return [node]


def _signature(node: Schema, defs: Schema) -> object:
    """What a schema accepts, as a comparable value (titles and descriptions left out)."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        return frozenset(_signature(option, defs) for option in _options(node, defs))
    items = node.get("items")
    properties = node.get("properties", {})
    return (
        node.get("type"),
        node.get("format"),
        frozenset(node.get("enum", ())),
        _signature(items, defs) if isinstance(items, dict) else None,
        tuple(sorted((name, _signature(sub, defs)) for name, sub in properties.items())),
    )


def _accepts(old: Schema, new: Schema, defs_old: Schema, defs_new: Schema) -> bool:
    """Whether every value the old schema allowed is still allowed by the new one."""
    new_options = _options(new, defs_new)
    for option in _options(old, defs_old):
        if "enum" in option:
            enums = [o for o in new_options if "enum" in o and o.get("type") == option.get("type")]
            if not any(set(option["enum"]) <= set(o["enum"]) for o in enums):
                return False
            continue
        old_signature = _signature(option, defs_old)
        if not any(_signature(o, defs_new) == old_signature for o in new_options):
            return False
    return True


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Each reason why payloads valid under `old` may be rejected by `new`; empty if none."""
    defs_old, defs_new = old.get("$defs", {}), new.get("$defs", {})
    old_fields: Schema = old.get("properties", {})
    new_fields: Schema = new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    problems: list[str] = []
    for name, old_field in old_fields.items():
        if name not in new_fields:
            problems.append(f"field {name!r} was removed or renamed")
        elif not _accepts(old_field, new_fields[name], defs_old, defs_new):
            problems.append(f"field {name!r} was retyped or narrowed")
    for name in sorted(new_required - old_required):
        if name in old_fields:
            problems.append(f"field {name!r} was made required")
        else:
            problems.append(f"new field {name!r} is required")
    if old.get("additionalProperties") is not False and new.get("additionalProperties") is False:
        problems.append("unknown fields are now rejected")
    return problems
