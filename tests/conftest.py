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


def fuzz_selected(config) -> bool:
    """Whether the -m expression selects tests marked fuzz (so "not fuzz" does not count)."""
    expr = config.getoption("markexpr") or ""
    if not expr:
        return False
    try:
        from _pytest.mark.expression import Expression

        compiled = Expression.compile(expr)
        try:
            return bool(compiled.evaluate(lambda name, **kw: name == "fuzz"))
        except TypeError:  # older pytest: matcher(name)
            return bool(compiled.evaluate(lambda name: name == "fuzz"))
    except Exception:  # noqa: BLE001 - private API moved: fall back to a plain reading
        return "fuzz" in expr and "not fuzz" not in expr


def pytest_report_header(config):
    if fuzz_selected(config):
        return [f"fuzz campaign seed: CK_FUZZ_SEED={FUZZ_SEED} (replay the campaign with this variable set)"]
    return []


@pytest.fixture
def fuzz_seed(request):
    """A decorator applying the campaign seed (identity when --hypothesis-seed is given)."""
    from hypothesis import seed

    if request.config.getoption("hypothesis_seed", None) is not None:
        return lambda f: f
    return seed(FUZZ_SEED)
