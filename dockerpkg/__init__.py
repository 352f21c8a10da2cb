"""dockerpkg: build, verify, publish, prune and version trees of Docker images."""
