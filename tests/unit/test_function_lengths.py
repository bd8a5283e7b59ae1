"""No function of the package is longer than 80 lines (``python -m tests.tools.function_lengths`` lists them)."""

from __future__ import annotations

from tests.tools.function_lengths import function_lengths

LIMIT = 80


def test_no_function_is_over_the_limit():
    too_long = [f"{where} ({lines} lines)" for lines, where in function_lengths() if lines > LIMIT]
    assert not too_long, "split these into named stages:\n" + "\n".join(too_long)

