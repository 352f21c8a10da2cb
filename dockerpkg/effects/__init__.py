"""The effects layer: files, the Docker daemon, registries, processes and locks."""
