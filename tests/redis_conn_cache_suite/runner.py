"""Django's DiscoverRunner, writing every test's outcome to REDIS_CONN_SUITE_RESULTS (JSON).

The pytest test that starts the run reads the file to compare our classes with Django's own
``RedisCacheTests``: what ran, what passed, what was skipped and why.
"""

from __future__ import annotations

import json
import os
import unittest
from typing import Any

from django.test.runner import DiscoverRunner

OUTCOMES: list[dict[str, Any]] = []


class RecordingResult(unittest.TextTestResult):
    def _record(self, test: Any, outcome: str, detail: str = "") -> None:
        OUTCOMES.append({"id": test.id(), "outcome": outcome, "detail": detail})

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", self._exc_info_to_string(err, test))

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record(subtest, "failed", self._exc_info_to_string(err, test))

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "expected failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected success")


class RecordingRunner(DiscoverRunner):
    def get_resultclass(self) -> Any:
        return RecordingResult

    def suite_result(self, suite: Any, result: Any, **kwargs: Any) -> Any:
        from cache.tests import BaseCacheTests

        base_tests = sorted(name for name in dir(BaseCacheTests) if name.startswith("test_"))
        with open(os.environ["REDIS_CONN_SUITE_RESULTS"], "w") as out:
            json.dump({"base_tests": base_tests, "outcomes": OUTCOMES}, out, indent=1)
        return super().suite_result(suite, result, **kwargs)
