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


# Fuzz campaigns (-m fuzz) draw from one printed seed, so that a failing campaign replays with
# CK_FUZZ_SEED=<seed> (hypothesis' own --hypothesis-seed=<n> takes precedence when given).
import os as _os  # noqa: E402
import random as _random  # noqa: E402

FUZZ_SEED = int(_os.environ.get("CK_FUZZ_SEED") or _random.SystemRandom().randrange(2**32))


def pytest_report_header(config):
    if "fuzz" in (config.getoption("markexpr") or ""):
        return [f"fuzz campaign seed: CK_FUZZ_SEED={FUZZ_SEED} (replay the campaign with this variable set)"]
    return []


@pytest.fixture
def fuzz_seed(request):
    """A decorator applying the campaign seed (identity when --hypothesis-seed is given)."""
    from hypothesis import seed

    if request.config.getoption("hypothesis_seed", None) is not None:
        return lambda f: f
    return seed(FUZZ_SEED)
