"""``python -m ssmtui``: the same as the ``ssmtui`` command."""

from ssmtui.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
