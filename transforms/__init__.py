"""transforms: the pure, engine-agnostic table logic (narwhals over lazy frames; DESIGN §1).

One module per output table, named for it, whose docstring gives the table's grain and columns;
`staging` (dedupe and quarantine rules), `schemas` (every column contract), `params` (the typed
parameters a transform takes) and `_expr` (shared expressions). Nothing here opens a file, reads a
clock or creates a session: that is `jobs/`. Where a change goes: docs/INTERFACES.md, "Extending".
"""
