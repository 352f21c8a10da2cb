"""The pure core: snapshot, config and observed facts in, immutable plans out; no I/O."""
