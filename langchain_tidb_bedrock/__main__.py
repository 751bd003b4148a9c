"""``python -m langchain_tidb_bedrock``: the ``tidb-bedrock`` command line."""

from langchain_tidb_bedrock.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
