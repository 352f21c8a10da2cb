"""Tests against a real Docker daemon and real registries."""
