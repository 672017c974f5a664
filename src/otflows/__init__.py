"""otflows: optimal-transport normalizing flows, reproduced in one pipeline."""

__version__ = "0.1.0"
