"""Shared pytest fixtures live in tests/fixtures/, one module per concern."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.s3",
    "tests.fixtures.stores",
]
