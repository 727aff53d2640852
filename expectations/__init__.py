"""expectations: the data-quality gate (DESIGN §5), great-expectations suites as code.

One module per input and output table, each with `TABLE` and `suite(...)` -> its checks, tagged
critical or warning (`_checks` builds them); `gate.evaluate` runs them all and gives the verdict
that `jobs.nightly.gate_day` writes to dq.json. A new output table's suite goes in `gate.OUTPUT_SUITES`.
"""
