"""`python -m tinyasc ...` is the `tinyasc` command."""
from tinyasc.cli import main

if __name__ == "__main__":
    main(prog_name="tinyasc")
