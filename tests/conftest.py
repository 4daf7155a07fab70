import numpy as np
import pytest

import numbacnn as nc


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded():
    nc.manual_seed(0)
