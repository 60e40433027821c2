"""End-to-end tests: a failing test that used the native stack shows the end of its logs."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.support.native_stack import RunningStack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and isinstance(item, pytest.Function):
        for value in item.funcargs.values():
            if isinstance(value, RunningStack):
                report.sections.append(("native stack logs", value.log_tails()))
    return report
