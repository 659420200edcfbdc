"""The programme's indicators, in three parts with one job each.

- ``catalogue.toml`` / :mod:`.catalogue`: what each indicator counts (data the programme
  edits and reviewers diff), read into :class:`Indicator` with its formula;
- :mod:`.compute`: the SQL that counts, and the periods;
- :mod:`.disclosure`: what roles below manager may learn (the lattice, small-cell
  suppression, consistent random rounding; its docstring is the design).
"""

from __future__ import annotations

from collector.read.indicators.catalogue import (
    CatalogueError,
    Condition,
    Count,
    Indicator,
    Part,
    Sum,
    load_catalogue,
)
from collector.read.indicators.compute import PERIODS, IndicatorResult, compute, period_label
from collector.read.indicators.disclosure import (
    ROUNDING_SECRET,
    Cell,
    cell_key_fraction,
    rounded,
    suppress,
)

INDICATORS: tuple[Indicator, ...] = load_catalogue()
INDICATORS_BY_ID: dict[str, Indicator] = {i.id: i for i in INDICATORS}

__all__ = [
    "INDICATORS",
    "INDICATORS_BY_ID",
    "PERIODS",
    "ROUNDING_SECRET",
    "CatalogueError",
    "Cell",
    "Condition",
    "Count",
    "Indicator",
    "IndicatorResult",
    "Part",
    "Sum",
    "cell_key_fraction",
    "compute",
    "load_catalogue",
    "period_label",
    "rounded",
    "suppress",
]
