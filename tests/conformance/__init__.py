"""Conformance suites every backend must pass (datastores here; hosts alongside)."""
