from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enclavia.policy.document import Policy, parse_policy
from tests.support import Served, start_served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_served(Path(tmp_path_factory.mktemp("enclavia")))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def dev_policy(served: Served) -> Policy:
    return parse_policy(served.policy_text)
