"""Revisions of the store schema, oldest first (see collector/migrations)."""
