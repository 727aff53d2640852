"""benchmarks: the harness (`run`), the independent DuckDB SQL implementation of every output table
(`duckdb_reference`, also the tests' reference) and `seed_history` (a month of earlier days, for the steady-state timing); see benchmarks/README.md."""
