"""The HTTP layer: a FastAPI app with one router per resource, the request conventions, and the one table from
the error family to status codes."""
