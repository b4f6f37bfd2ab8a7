import pytest

from assess import load_instrument


@pytest.fixture(scope="session")
def ins():
    return load_instrument("gbt42195-2022")
