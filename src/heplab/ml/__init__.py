"""heplab.ml."""
