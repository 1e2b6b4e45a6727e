"""I/O behind small interfaces chosen by configuration: the object store, the manifest, the
stage area between Spark jobs, the warehouse, and the one Spark session factory."""
