"""The ``tidb-bedrock`` command line: commands, the services it opens, and folder ingest."""
