from __future__ import annotations

import pytest

from enclavia.protect.detect import Detector


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector()
