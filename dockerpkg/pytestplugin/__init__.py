"""The pytest plugin: an image tree's images as test items (render, lint, build, test.sh,
structure checks) and fixtures for tests of one's own (see docs/testing.md).

`plugin` is the entry point pytest loads (`pytest11`); it imports nothing of dockerpkg until a
run names a tree, so that loading it costs next to nothing.
"""
