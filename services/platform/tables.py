"""Column types and bulk statements for the services' SQLModel tables.

Each service declares its tables once, as SQLModel classes (`table=True`) on a base bound to its
own schema (`schema_registry`); reads, writes and Alembic's metadata all come from those classes.
Enumerations are stored as text and read back as the enumeration, so a loaded row holds the same
values a validated contract would. The consumers' bulk statements (asyncpg, arrays of values) take
their column lists from the same tables (`bulk_upsert`), never from SQL typed out again.
"""

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from enum import StrEnum
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import (
    ARRAY,
    Column,
    DateTime,
    Dialect,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    inspect,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import registry
from sqlmodel import SQLModel


def schema_registry(schema: str) -> registry:
    """A registry whose MetaData puts every table in `schema`: one per service."""
    return registry(metadata=MetaData(schema=schema))


def table_of(model: type[SQLModel]) -> Table:
    """The table a SQLModel class declares (SQLModel builds it but does not type `__table__`)."""
    table = inspect(model).local_table
    assert isinstance(table, Table), f"{model.__name__} is mapped to one table"
    return table


# A timestamp with its time zone: every instant the services store is timezone-aware.
UtcDateTime = DateTime(timezone=True)


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E], Generic[E]):
    """A `StrEnum` stored as its text value and read back as the enumeration."""

    impl = Text
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: E | None, _dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, _dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


class EnumTuple(TypeDecorator[tuple[E, ...]], Generic[E]):
    """A tuple of `StrEnum` values stored as a text array."""

    impl = ARRAY(Text)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Sequence[E] | None, _dialect: Dialect) -> list[str] | None:
        return None if value is None else [self.enum(item).value for item in value]

    def process_result_value(
        self, value: Sequence[str] | None, _dialect: Dialect
    ) -> tuple[E, ...] | None:
        return None if value is None else tuple(self.enum(item) for item in value)


# --- bulk statements for the consumers (asyncpg, one array per column) ----------------------------

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def qualified(table: Table) -> str:
    """`schema.table`, checked: both names come from code, never from input."""
    for name in (table.schema, table.name):
        if name is None or not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain identifier")
    return f"{table.schema}.{table.name}"


def _quoted(name: str) -> str:
    return f'"{name}"'


# Only the enumerations need translating (below): asyncpg reads and writes the other columns' own
# types (an interval as a timedelta) itself, even where SQLAlchemy wraps them in a decorator.


def decoder(column: Column[Any]) -> Callable[[Any], Any] | None:
    """How a value asyncpg read from `column` becomes the column's type (None: as it is)."""
    column_type = column.type
    if isinstance(column_type, EnumText | EnumTuple):
        return lambda value: column_type.process_result_value(value, _DIALECT)
    return None


def encoder(column: Column[Any], *, arrays_as_text: bool = False) -> Callable[[Any], Any] | None:
    """How a value travels to asyncpg for `column` (None: as it is).

    With `arrays_as_text`, an array column's value is joined as `bulk_upsert` takes it.
    """
    if arrays_as_text and is_array(column):
        return array_param
    column_type = column.type
    if isinstance(column_type, EnumText | EnumTuple):
        return lambda value: column_type.process_bind_param(value, _DIALECT)
    return None


def as_read(column: Column[Any], value: object) -> Any:  # noqa: ANN401 - of the column's type
    """One value from asyncpg as the column's type reads it (an enumeration's text as the enum)."""
    decode = decoder(column)
    return value if decode is None else decode(value)


def as_written(column: Column[Any], value: object) -> object:
    """One value for asyncpg as the column's type writes it (an enumeration as its text)."""
    encode = encoder(column)
    return value if encode is None else encode(value)


def _sql_type(column: Column[Any]) -> str:
    column_type: Any = column.type
    if isinstance(column_type, EnumText | EnumTuple):
        column_type = column_type.impl_instance
    elif isinstance(column_type, TypeDecorator):
        # The type PostgreSQL stores: an Interval is a native INTERVAL here, not its fallback.
        column_type = column_type.dialect_impl(_DIALECT)
    return str(column_type.compile(dialect=_DIALECT))


def is_array(column: Column[Any]) -> bool:
    """Whether the column holds an array: `bulk_upsert` takes its values joined by commas."""
    return _sql_type(column).endswith("[]")


def array_param(values: Sequence[StrEnum] | Sequence[str] | None) -> str | None:
    """An array column's value in a `bulk_upsert`: unnest flattens arrays, so it travels as text."""
    return None if values is None else ",".join(str(value) for value in values)


def select_columns(table: Table, columns: Sequence[str] | None = None) -> str:
    """`SELECT <columns> FROM schema.table`: every column unless `columns` names some."""
    names = [column.name for column in table.columns] if columns is None else list(columns)
    for name in names:
        table.columns[name]
    # Names from the table's own metadata, checked by `qualified`: never from input.
    return f"SELECT {', '.join(map(_quoted, names))} FROM {qualified(table)}"  # noqa: S608


def unnest(*columns: Column[Any], ordinality: bool = False) -> str:
    """`unnest($1::<type>[], …) AS u(<names>)`: one array parameter per column, typed as its table
    types it; with `ordinality`, `u.n` numbers the rows in the order the arrays give them."""
    if any(is_array(column) for column in columns):
        raise ValueError("unnest would flatten an array column: use bulk_upsert")
    parameters = ", ".join(
        f"${position}::{_sql_type(column)}[]" for position, column in enumerate(columns, start=1)
    )
    names = [_quoted(column.name) for column in columns] + (["n"] if ordinality else [])
    numbered = " WITH ORDINALITY" if ordinality else ""
    return f"unnest({parameters}){numbered} AS u({', '.join(names)})"


def bulk_insert(table: Table, columns: Sequence[str]) -> str:
    """Append rows given as one array per column (`$1` the first column's values)."""
    chosen = [table.columns[name] for name in columns]
    names = ", ".join(_quoted(column.name) for column in chosen)
    # Names from the table's own metadata, checked by `qualified`: never from input.
    return f"INSERT INTO {qualified(table)} ({names}) SELECT * FROM {unnest(*chosen)}"  # noqa: S608


def bulk_upsert(table: Table, columns: Sequence[str] | None = None) -> str:
    """Insert or overwrite rows given as one array per column (`$1` the first column's values).

    The columns default to every column of the table in declaration order; a text-array column's
    values are passed through `array_param`. Conflicts on the primary key overwrite the row.
    """
    chosen = [table.columns[name] for name in columns] if columns else list(table.columns)
    names = [column.name for column in chosen]
    aliases = [f"c{position}" for position in range(len(chosen))]
    parameters = []
    selected = []
    for position, (column, alias) in enumerate(zip(chosen, aliases, strict=True), start=1):
        if is_array(column):
            parameters.append(f"${position}::text[]")
            element = _sql_type(column).removesuffix("[]")
            selected.append(f"string_to_array({alias}, ',')::{element}[]")
        else:
            parameters.append(f"${position}::{_sql_type(column)}[]")
            selected.append(alias)
    keys = [column.name for column in table.primary_key.columns]
    updates = [name for name in names if name not in keys]
    conflict = (
        f" ON CONFLICT ({', '.join(map(_quoted, keys))}) DO UPDATE SET "
        + ", ".join(f"{_quoted(name)} = excluded.{_quoted(name)}" for name in updates)
        if updates
        else f" ON CONFLICT ({', '.join(map(_quoted, keys))}) DO NOTHING"
    )
    # Names from the table's own metadata, checked by `qualified`: never from input.
    insert = f"INSERT INTO {qualified(table)} ({', '.join(map(_quoted, names))})"
    rows = f" SELECT {', '.join(selected)} FROM unnest({', '.join(parameters)}) AS u({', '.join(aliases)})"  # noqa: E501, S608
    return insert + rows + conflict


@contextlib.asynccontextmanager
async def connection_of(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection, for the consumers' bulk statements."""
    async with engine.connect() as sa_connection:
        raw = await sa_connection.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        yield connection
