"""Percolate's runtime library: what the Spark jobs and the DAG run.

`core` (settings, layout, table columns, provenance), `io` (object store, stage area,
warehouse, the Spark session), `video` (safe decoding), `transforms` (DataFrame ->
DataFrame steps), `inference` (models inside Spark workers), `handover` (validation
between stages), `report` (a run's summary as text). Nothing here imports `workflows`,
the CLI or the synthetic generator.
"""
