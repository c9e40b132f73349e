"""``python -m heplab`` runs the command line."""

from heplab.cli import main

main()
