"""Test run of one series version: apply, generate, build on every kernel, verdict."""
