"""Session fixture: the smoke upstream artifacts, built once."""

import pytest
from attribution_fixtures import build_artifacts


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict:
    return build_artifacts(tmp_path_factory.mktemp("smoke"))
