"""The AsyncAPI document FastStream generates from the brokers' publishers and subscribers.

Each service serves its own part at `/asyncapi.json`; `nearhome asyncapi` writes the whole
exchange's (every service's brokers together), committed as `docs/asyncapi.json`.
"""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

ASYNCAPI_PATH = "/asyncapi.json"


def asyncapi_document(
    brokers: list[KafkaBroker], *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `brokers`, as JSON-ready data."""
    specification = AsyncAPI(
        *brokers, title=title, version=version, description=description
    ).to_specification()
    document: dict[str, Any] = json.loads(specification.to_json())
    return document


def add_asyncapi_route(app: FastAPI, *brokers: KafkaBroker) -> None:
    """Serve the service's own channels at `/asyncapi.json`, and keep its brokers on the app.

    `nearhome asyncapi` reads `app.state.event_brokers` of every service to write the exchange's.
    """
    app.state.event_brokers = list(brokers)

    @app.get(ASYNCAPI_PATH, tags=["operations"], include_in_schema=False)
    async def asyncapi() -> JSONResponse:
        document = asyncapi_document(
            list(brokers), title=app.title, version=app.version, description=app.summary or ""
        )
        return JSONResponse(document)
