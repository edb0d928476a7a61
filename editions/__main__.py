"""``python -m editions`` rewrites the generated files (the Colab and student editions, the teachers' tables, the
README's chapter times); ``--check`` fails when a committed one is stale; ``--version`` prints the version that
every pinned place agrees on (or fails, listing the places that disagree); ``--bump X.Y.Z`` moves them all to a new
version and regenerates the editions.
"""

from __future__ import annotations

import argparse
import sys

from editions import colab, teaching, versions


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the Colab editions; return the process's exit status."""
    parser = argparse.ArgumentParser(prog="python -m editions", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report editions that differ from the sources")
    parser.add_argument("--version", action="store_true", help="print the version pinned everywhere, or fail")
    parser.add_argument("--bump", metavar="X.Y.Z", help="set a new version in pyproject, flowlib and the chapters")
    args = parser.parse_args(argv)
    if args.version:
        try:
            print(versions.current())
        except ValueError as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    if args.bump:
        for path in versions.bump(args.bump):
            print(f"wrote {path.relative_to(colab.myst.ROOT)}")
    if args.check:
        problems = (
            [f"colab/{name}" for name in colab.stale()]
            + [f"student/{name}" for name in colab.stale(colab.STUDENT_OUT, student=True)]
            + teaching.stale()
        )
        for name in problems:
            print(f"{name} is out of date: run python -m editions", file=sys.stderr)
        return 1 if problems else 0
    for path in [*colab.write(), *colab.write(colab.STUDENT_OUT, student=True), *teaching.write()]:
        print(f"wrote {path.relative_to(colab.myst.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
