"""What people run: the `percolate` command line, and the workflows behind it (launching
the DAG and Spark jobs, training, evaluation and its report, SQL queries, progress).
Uses the runtime library (`percolate`), `models` and the generator (`synth`); nothing
in those imports from here."""
