"""One router per resource (the FastAPI template's layout)."""
