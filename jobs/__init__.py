"""Spark jobs: thin `main(argv)` entry points around pure DataFrame -> DataFrame transforms."""
