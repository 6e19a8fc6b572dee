"""Shared pytest configuration: hypothesis profiles and the kernel-backend fixture.

Profiles: ``ci`` (the default: fixed seed, few examples, no deadline) keeps the suite
within its time budget; ``thorough`` runs many more examples. Select one with
``HYPOTHESIS_PROFILE=thorough python -m pytest``.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _available_backends():
    import minireparam.backend as backend

    return list(backend.available())


@pytest.fixture(params=["c", "numpy"])
def backend_name(request):
    """Run the test once per kernel backend; C is skipped (with the reason) when not built."""
    import minireparam.backend as backend

    name = request.param
    if name not in _available_backends():
        pytest.skip(f"the {name} backend is not available: {backend.c_unavailable_reason()}")
    with backend.use(name):
        yield name


@pytest.fixture
def rng():
    """A fixed-seed numpy Generator, so a failing case reproduces."""
    return np.random.default_rng(12345)
