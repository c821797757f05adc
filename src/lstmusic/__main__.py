"""`python -m lstmusic` is the same as the `lstmusic` command."""

from lstmusic.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
