"""`make test` runs each test file on one pytest-xdist worker (tests/conftest.py), so that a file's
module fixtures are built once. A pytest or xdist release that drops the groups fails here."""

import os

import pytest


def test_under_make_test_this_file_is_one_group(request):
    if os.environ.get("PYTEST_XDIST_WORKER") is None or request.config.getvalue("loadgroup") is not True:
        pytest.skip("not under pytest-xdist --dist loadgroup (make test)")
    # xdist's loadgroup scheduler reads the group from the id's "@" suffix
    assert request.node.nodeid.endswith("@test_xdist_groups.py"), request.node.nodeid
