"""What everything else agrees on: settings, where data lives, every table's columns,
provenance and reason codes. Imports nothing else of Percolate."""
