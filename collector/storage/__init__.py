"""The store's parts, one job each. Import from ``collector.store``: the facade the
others use (``collector/store.py``), which re-exports every name from here."""
