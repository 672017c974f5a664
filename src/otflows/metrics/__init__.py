"""Metrics: MMD, likelihoods, transport costs."""
