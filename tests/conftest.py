"""Shared pytest setup for every tier (helpers live next to the tests that use them)."""
