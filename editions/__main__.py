"""``python -m editions`` rewrites the generated files (the Colab and student editions, the teachers' tables, the
README's chapter times); ``--check`` fails when a committed one is stale.
"""

from __future__ import annotations

import argparse
import sys

from editions import colab, teaching


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the Colab editions; return the process's exit status."""
    parser = argparse.ArgumentParser(prog="python -m editions", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report editions that differ from the sources")
    args = parser.parse_args(argv)
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
