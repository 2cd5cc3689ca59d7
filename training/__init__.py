"""Dataset converters, training entry points, and the synthetic data used by demos and tests."""
