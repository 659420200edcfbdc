"""Revisions of the store schema, oldest first (see collector/store/migrations)."""
