"""`python -m tinyasc ...` is the `tinyasc` command (tinyasc experiment --jobs starts its workers so)."""
from tinyasc.cli import main

main()
