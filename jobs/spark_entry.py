"""spark-submit entry point: `spark-submit [--master M] jobs/spark_entry.py --input DIR --output DIR --ds D ...`.

The same arguments, run path and exit codes as `riskinsight run` (0 ok, 2 usage, 3 DQ gate failed,
4 input missing or unreadable, 5 ds locked), with the engine fixed to Spark on whatever master
spark-submit chose. --input and --output may be any Hadoop filesystem URI (hdfs://, abfs://,
s3a://, file://...) or a local path (mounted at the same path on every host).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

# spark-submit runs this file as a script: sys.path[0] is jobs/ (whose modules would shadow top-level
# names such as `config`) and the repo root is missing unless the package is installed.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _HERE]
try:
    import jobs  # noqa: F401
except ImportError:
    sys.path.insert(0, str(_HERE.parent))

from jobs.errors import UsageError

PROG = "spark_entry.py"


def _split_verbose(argv: Sequence[str]) -> tuple[list[str], bool]:
    args = [a for a in argv if a != "--verbose"]
    return args, len(args) != len(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from jobs import cli

    args_in, verbose = _split_verbose(sys.argv[1:] if argv is None else argv)
    parser = cli.build_parser()
    parser.prog = PROG
    # The CLI's own `run` parser, so both entry points take the same flags; argparse exits 2 on bad ones.
    args = parser.parse_args(["run", *args_in])
    args.verbose = verbose
    engine = None

    def run() -> int:
        nonlocal engine
        if args.engine != "spark" and any(a == "--engine" or a.startswith("--engine=") for a in args_in):
            raise UsageError("spark_entry.py always runs the Spark engine; drop --engine")
        from jobs.engines.spark_engine import SparkEngine

        engine = SparkEngine(app_name=f"riskinsight {args.ds or f'{args.start}..{args.end}'}")
        args.engine = engine
        return cli.cmd_run(args)

    try:
        # The CLI's own error handling, filesystem refusals included: the same exit codes and lines.
        return cli.exit_code_of(run, verbose)
    finally:
        if engine is not None:
            engine.close()


if __name__ == "__main__":
    sys.exit(main())
