"""heplab.trigger."""
