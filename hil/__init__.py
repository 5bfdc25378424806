"""Hardware in the loop: the clip tools and the replay harness (docs/hil.md). `python -m hil --help`."""
