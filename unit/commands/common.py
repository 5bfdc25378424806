"""What the unit's commands share: the config a command names with `--config`, or why it cannot be used."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable

from unit.config import ConfigError, UnitConfig, load


def load_config(path: str) -> UnitConfig | None:
    """The config at `path`, or None after printing the key at fault."""
    try:
        return load(path)
    except ConfigError as exc:
        print(f"alpr-unit: config error: {exc}", file=sys.stderr)
        return None


def with_config(run: Callable[[argparse.Namespace, UnitConfig], int]) -> Callable[[argparse.Namespace], int]:
    """`run(args, cfg)` as a command's `run(args)`: the config of `args.config` loaded first, exit 2
    (bad input) when it cannot be used."""
    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        cfg = load_config(args.config)
        return 2 if cfg is None else run(args, cfg)
    return command
