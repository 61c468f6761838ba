"""The ``jaxloss`` command: ``jaxloss verify`` and ``jaxloss bench``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: jaxloss {verify,bench} [options]   (jaxloss verify --help, jaxloss bench --help)"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches to a subcommand."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
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
