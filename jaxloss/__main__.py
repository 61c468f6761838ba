"""The ``jaxloss`` command: ``jaxloss verify`` and ``jaxloss bench``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jaxloss.tools.run_info import machine, versions

__all__ = ["machine", "main", "versions"]

USAGE = """usage: jaxloss {verify,bench} [options]
       jaxloss --version

commands:
  verify   check every closed-form rule against jax.grad of the article's formulas and against
           mpmath, in ulps; exits non-zero on any failure (jaxloss verify --help)
  bench    time value_and_grad and whole training steps side by side with optax, with ratios
           and temporary memory (jaxloss bench --help)

options:
  -h, --help  show this message
  --version   print the versions of jaxloss, jax and jaxlib"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches to a subcommand."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        print(versions())
        return 0
    command, rest = args[0], args[1:]
    if command == "verify":
        from jaxloss.tools import verify

        return verify.main(rest)
    if command == "bench":
        from jaxloss.tools import bench

        return bench.main(rest)
    print(f"jaxloss: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
