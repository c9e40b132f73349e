"""Click commands of the ``heplab tracking`` and ``heplab calo`` groups, one module per topic.

Each module defines its commands and ``COMMANDS = {"tracking"|"calo": [command, ...]}``;
:mod:`heplab.cli` attaches them to their group. Heavy imports stay inside the command
functions so that ``heplab --help`` stays fast.
"""
