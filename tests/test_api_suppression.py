"""Small-cell suppression (collector.read.indicators.suppress): a pure function, tested alone."""

from __future__ import annotations

from collector.read.indicators import INDICATORS, Cell, suppress


def cells(*rows: tuple[str, str, int]) -> list[Cell]:
    return [Cell({"district": d, "sex": s}, v) for d, s, v in rows]


def test_suppress__small_cells_hidden_zeros_shown():
    out = suppress(cells(("kulob", "female", 3), ("kulob", "male", 0), ("nurek", "male", 9)), 5)
    assert [(c.value, c.suppressed) for c in out] == [(None, True), (0, False), (9, False)]


def test_suppress__complement_across_either_breakdown():
    # women: kulob 3 (hidden), nurek 9; the women's total by sex alone (12) minus nurek's 9
    # would give kulob's 3 back, so nurek's women are withheld too.
    out = suppress(cells(("kulob", "female", 3), ("kulob", "male", 0), ("nurek", "female", 9)), 5)
    assert [(c.value, c.suppressed) for c in out] == [(None, True), (0, False), (None, True)]


def test_suppress__a_lone_hidden_cell_takes_its_smallest_sibling():
    # kulob: female 2 (hidden) beside male 7 and other 11; without the complement, a viewer
    # could take the district's total (20) minus 7 and 11 and recover the 2.
    out = suppress(cells(("kulob", "female", 2), ("kulob", "male", 7), ("kulob", "other", 11)), 5)
    assert [c.suppressed for c in out] == [True, True, False]
    assert all(c.value is None for c in out if c.suppressed)


def test_suppress__two_hidden_cells_need_no_complement():
    out = suppress(cells(("kulob", "female", 2), ("kulob", "male", 3), ("kulob", "other", 11)), 5)
    assert [c.suppressed for c in out] == [True, True, False]


def test_indicators__each_has_a_formula_and_a_unit():
    ids = [i.id for i in INDICATORS]
    assert len(ids) == len(set(ids))
    for i in INDICATORS:
        assert i.formula and i.form in i.formula and i.unit
        assert "district" in i.breakdown_names()
