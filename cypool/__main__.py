"""``python -m cypool demo`` runs the demo; ``python -m cypool config`` shows the build."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cypool", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="time and check the pooling layers of small CNNs")
    demo.add_argument("--repeats", type=int, default=3, help="timed runs per op (median)")
    sub.add_parser("config", help="print version, NumPy, compiler, OpenMP and threads")
    args = parser.parse_args(argv)
    if args.command == "config":
        from cypool import show_config
        show_config()
        return 0
    from cypool import _demo
    return 0 if _demo.run(repeats=args.repeats) else 1


if __name__ == "__main__":
    sys.exit(main())
