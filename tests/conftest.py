import numpy as np
import pytest

import convkern

ISAS = list(convkern._backend.ISA_NAMES)


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test once per ISA, each forced in turn; skips those the CPU lacks."""
    name = request.param
    if name not in convkern.available_isas():
        pytest.skip(f"{name} not supported by this CPU")
    with convkern.isa(name):
        yield name


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
