"""`python -m kvplan` runs the command-line interface."""

from kvplan.cli import main

if __name__ == "__main__":
    main()
