"""Print one line of counts per test run from pytest's JUnit XML, and why tests skipped.

CI runs the Central-facing tests twice (the emulator, then a real Central); this makes the
two results readable side by side at the end of a long log.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def summarize(label: str, path: Path) -> str:
    """``label: N passed, N failed, N skipped, N xfailed`` and the reasons counted."""
    if not path.exists():
        return f"{label}: no result ({path} missing: the run did not finish)"
    passed = failed = skipped = xfailed = 0
    reasons: Counter[str] = Counter()
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - our own pytest output
        outcome = next(iter(case), None)
        tag = outcome.tag if outcome is not None else "passed"
        if tag in ("failure", "error"):
            failed += 1
        elif tag == "skipped" and outcome.get("type") == "pytest.xfail":
            xfailed += 1
            reasons["xfail: " + (outcome.get("message") or "").strip()] += 1
        elif tag == "skipped":
            skipped += 1
            reasons[(outcome.get("message") or "").strip()] += 1
        else:
            passed += 1
    lines = [f"{label}: {passed} passed, {failed} failed, {skipped} skipped, {xfailed} xfailed"]
    lines += [f"    {n}: {reason}" for reason, n in reasons.most_common()]
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    print("\n".join(summarize(args[i], Path(args[i + 1])) for i in range(0, len(args), 2)))
