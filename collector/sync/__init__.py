"""The sync: submissions (``submissions``) and entity lists (``entities``) from Central
into the store, incrementally, losing nothing; Central's rows made relational
(``normalize``), overlapped in threads (``pipeline``).

May import: ``collector.central``, ``collector.store``, ``collector.forms`` (the manifest
and what a workbook says of its questions) and the shared top modules. Never what the API
reads, or the edge.
"""
