"""Command line: ``python -m convkern info`` (or the ``convkern`` script)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="convkern", description="convkern command line")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("info", help="version, ISAs, threads, CUDA")
    args = parser.parse_args(argv)
    if args.cmd in (None, "info"):
        import convkern

        print(convkern.format_info())
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
