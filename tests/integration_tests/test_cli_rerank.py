"""``--rerank`` on the commands that answer questions, in-process against TiDB and LocalBedrock."""

from __future__ import annotations

import re

import pytest

from langchain_tidb_bedrock.cli import main as cli
from langchain_tidb_bedrock.local import _rerank as standin
from langchain_tidb_bedrock.local.bedrock import LocalBedrock, RecordedRequest

COHERE = "cohere.rerank-v3-5:0"
AMAZON = "amazon.rerank-v1:0"


@pytest.fixture
def args(tidb_url: str, bedrock: LocalBedrock, table_name: str) -> list[str]:
    return ["--tidb-url", tidb_url, "--bedrock-endpoint-url", bedrock.endpoint_url]


def _reranks(bedrock: LocalBedrock) -> list[RecordedRequest]:
    return [r for r in bedrock.requests if r.op == "Rerank"]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_demo_and_ask_with_rerank(
    args: list[str], table_name: str, bedrock: LocalBedrock, capsys: pytest.CaptureFixture[str]
) -> None:
    table = ["--table", table_name]
    assert cli.main(["demo", *args, *table, "--rerank", COHERE]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"Retrieved 3 passages (vector search, reranked by {COHERE}):" in out
    (request,) = _reranks(bedrock)
    assert len(request.body["sources"]) == 5  # all five facts fetched, three kept
    assert request.region == "us-east-1"
    texts = [s["inlineDocumentSource"]["textDocument"]["text"] for s in request.body["sources"]]
    best = standin.rank(cli.DEMO_QUESTION, texts, 3)
    block = out.split("):\n")[1].split("\n\nAnswer:")[0]
    assert re.findall(r"^  \[\d\] (.+)$", block, re.MULTILINE) == [texts[i] for i, _ in best]
    sources = out.split("Sources:\n")[1].strip().splitlines()
    assert [line.rsplit(" relevance ", 1)[1] for line in sources] == [f"{s:.2f}" for _, s in best]

    bedrock.reset()
    assert cli.main(["ask", "Is TiDB MySQL compatible?", *args, *table, "--rerank", COHERE]) == 0
    out, _ = capsys.readouterr()
    assert len(_reranks(bedrock)) == 1
    assert " relevance " in out.split("Sources:\n")[1]


def test_rerank_model_not_in_the_region(
    args: list[str], table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The local endpoint signs for us-east-1 here, where Amazon Rerank 1.0 is not offered.
    code = cli.main(["demo", *args, "--table", table_name, "--rerank", AMAZON])
    assert code == 1
    out, err = capsys.readouterr()
    assert "Answer:" not in out
    line = _one_error_line(err)
    assert line.startswith(f"error: {AMAZON} is not offered in us-east-1; AWS lists it in ")


def test_bad_rerank_model_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "mysql+pymysql://root@127.0.0.1:1/test"  # never contacted
    code = cli.main(["ask", "q", "--tidb-url", url, "--rerank", "arn:aws:s3:::bucket"])
    assert code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: argument --rerank: 'arn:aws:s3:::bucket' is not a Bedrock")
