"""Test instruments shared by the test suites (importable as ``helpers``)."""
