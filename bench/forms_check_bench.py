"""How long ``forms check`` takes on a LibreOffice-saved workbook, beside pyxform's own
conversion of the same file (the baseline: check reads as pyxform reads, then adds rules).

    .venv/bin/python -m bench.forms_check_bench [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pyxform.xls2xform import convert

from collector.forms.check import check_form
from collector.forms.xlsform import _convert_xlsform, _read_xlsform

WORKBOOK = (
    Path(__file__).resolve().parent.parent
    / "tests/fixtures/pyxform_corpus/bug_example_xls/UCL_Biomass_Plot_Form.xlsx"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeat):
        _read_xlsform.cache_clear()
        _convert_xlsform.cache_clear()
        start = time.perf_counter()
        check_form(WORKBOOK)
        checked = time.perf_counter() - start
        start = time.perf_counter()
        convert(xlsform=str(WORKBOOK))
        converted = time.perf_counter() - start
        print(f"{WORKBOOK.name}: forms check {checked:.2f} s, pyxform convert {converted:.2f} s")


if __name__ == "__main__":
    main()
