"""Shared helpers for the tests and scripts: real services, never stand-ins."""
