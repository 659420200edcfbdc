"""What the API reads and computes from the store: queries and pages (``queries``,
``cursors``), exports, the OData feed, indicators with small-cell protection, the
register, who sent what (``activity``), and SQL roles with the API's rules.

May import: ``collector.store``, ``collector.forms`` (what a workbook says of its
questions) and the shared top modules. Never the Central client or the sync: what is read
here is the store, never Central.
"""
