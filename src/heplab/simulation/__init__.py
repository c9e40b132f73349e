"""heplab.simulation."""
