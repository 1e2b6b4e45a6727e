"""Pure DataFrame -> DataFrame steps of the nightly run, one module per Spark job.

They take plain values (a threshold, a frame rate, a store URI), never settings or
paths of their own; the jobs in `jobs/` read, call them and write.
"""
