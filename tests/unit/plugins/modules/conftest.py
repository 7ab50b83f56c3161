"""The modules' unit tests run the modules in pytest's process, as a module runs on a node."""

from __future__ import annotations

import pytest
from ansible.module_utils import _internal


@pytest.fixture(autouse=True)
def module_side(monkeypatch):
    """Warnings land in the module's result, as on a node. Importing any controller code (an action or
    filter plugin's test in the same xdist worker) makes ansible-core route module warnings to the
    controller's display instead, and the result would have none."""
    monkeypatch.setattr(_internal, "is_controller", False)
