"""heplab.reconstruction."""
