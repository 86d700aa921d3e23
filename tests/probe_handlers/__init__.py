"""Handlers for tests: the examples plus ones that misbehave on purpose."""
