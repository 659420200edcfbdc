"""Forms, from the designer's workbook to the tablet: read and check XLSForms
(``check``, ``rules``, ``expr``, ``entitycheck``), say what a new version changes (``diff``),
push them to Central (``push``, ``draft``), and set up the tablets that fill them
(``enumerators``).

May import: ``collector.central`` (the client), ``collector.store`` (what was pushed and
synced), and the shared modules at ``collector``'s top (settings, errors, times). Never the
sync, what the API reads, or the edge (``cli``, ``demo``).
"""
