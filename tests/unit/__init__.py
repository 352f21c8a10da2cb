"""Tests that need no Docker: the core, and effects on files and processes."""
