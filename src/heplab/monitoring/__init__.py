"""heplab.monitoring."""
