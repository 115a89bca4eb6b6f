"""What a log line is about: the request or event being handled when it was written.

The HTTP edge sets `request_id` for the life of each request; consumers set `event_id` while they
apply an event. The log formatter adds both to every line written meanwhile.
"""

import contextvars

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
