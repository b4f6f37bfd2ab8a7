import sys

import pytest

from assess import load_instrument


@pytest.fixture(scope="session")
def ins():
    return load_instrument("gbt42195-2022")


@pytest.fixture(autouse=True)
def _process_settings_restored():
    """``assess screen`` run in this process changes process-wide settings (GIL switch interval,
    numpy's huge pages); later tests get them back as they were."""
    from assess.screen.cli import numpy_huge_page_setter
    interval, setter = sys.getswitchinterval(), numpy_huge_page_setter()
    if setter is not None:
        huge = setter(True)     # the setter returns the value it replaces: read it, then put it back
        setter(huge)
    yield
    sys.setswitchinterval(interval)
    if setter is not None:
        setter(huge)
