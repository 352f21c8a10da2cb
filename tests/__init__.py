"""dockerpkg tests."""
