"""A learner's components, correct and deliberately broken, for tests/test_check_use.py."""
