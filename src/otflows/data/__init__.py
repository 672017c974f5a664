"""Data preparation: samplers and dataset loaders (no file I/O outside the CLI)."""
