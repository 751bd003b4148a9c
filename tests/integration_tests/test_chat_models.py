"""create_llama3_chat (ChatBedrockConverse) and langchain-aws' InvokeModel path, on LocalBedrock."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import EventStreamError
from langchain_aws import BedrockLLM, ChatBedrock
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_tidb_bedrock.chat_models.llama import (
    DEFAULT_EMBEDDING_MODEL_ID,
    DEFAULT_LLM_MODEL_ID,
    create_llama3_chat,
)
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

PASSAGES = (
    "[1] Amazon Bedrock serves Llama 3 models through the Converse API.\n"
    "[2] TiDB stores embeddings in VECTOR columns and answers similarity queries\n"
    "with an HNSW vector index.\n"
    "[3] The Eiffel Tower is in Paris."
)


def test_defaults_and_converse_request_schema(bedrock: LocalBedrock) -> None:
    assert DEFAULT_LLM_MODEL_ID == "us.meta.llama3-2-3b-instruct-v1:0"
    assert DEFAULT_EMBEDDING_MODEL_ID == "amazon.titan-embed-text-v2:0"
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url, max_tokens=64, top_p=0.5)
    answer = chat.invoke(
        [
            SystemMessage(f"Answer from these passages:\n{PASSAGES}"),
            HumanMessage("Question: Which index does TiDB use for vector similarity?"),
        ],
        stop=["Paris"],
    )
    assert answer.text == (
        "(LocalBedrock stand-in) TiDB stores embeddings in VECTOR columns and answers "
        "similarity queries with an HNSW vector index. [2]"
    )
    (record,) = bedrock.requests
    assert record.op == "Converse"
    assert record.model_id == DEFAULT_LLM_MODEL_ID
    assert record.body == {
        "messages": [
            {
                "role": "user",
                "content": [{"text": "Question: Which index does TiDB use for vector similarity?"}],
            }
        ],
        "system": [{"text": f"Answer from these passages:\n{PASSAGES}"}],
        "inferenceConfig": {
            "maxTokens": 64,
            "temperature": 0.0,
            "topP": 0.5,
            "stopSequences": ["Paris"],
        },
    }
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] > 0


def test_model_id_from_environment(bedrock: LocalBedrock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEDROCK_LLM_MODEL_ID", "us.meta.llama3-1-8b-instruct-v1:0")
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    chat.invoke("hi")
    assert bedrock.requests[0].model_id == "us.meta.llama3-1-8b-instruct-v1:0"
    explicit = create_llama3_chat("meta.llama3-8b-instruct-v1:0", endpoint_url=bedrock.endpoint_url)
    assert explicit.model_id == "meta.llama3-8b-instruct-v1:0"


def test_streaming_through_converse_stream(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    prompt = f"{PASSAGES}\n\nQuestion: What does Bedrock serve?"
    pieces = [chunk.text for chunk in chat.stream(prompt)]
    assert len([p for p in pieces if p]) > 3
    assert "".join(pieces) == (
        "(LocalBedrock stand-in) Amazon Bedrock serves Llama 3 models through the Converse API. [1]"
    )
    assert bedrock.requests[-1].op == "ConverseStream"


def test_chain_streams_strings(bedrock: LocalBedrock) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Passages:\n{context}"), ("human", "Question: {question}")]
    )
    chain = prompt | create_llama3_chat(endpoint_url=bedrock.endpoint_url) | StrOutputParser()
    parts = list(chain.stream({"context": PASSAGES, "question": "Where is the Eiffel Tower?"}))
    assert all(isinstance(p, str) for p in parts)
    assert "".join(parts) == "(LocalBedrock stand-in) The Eiffel Tower is in Paris. [3]"


def test_stop_sequences_cut_streamed_answer(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    prompt = f"{PASSAGES}\n\nQuestion: What does Bedrock serve?"
    text = "".join(c.text for c in chat.stream(prompt, stop=["Llama"]))
    assert text == "(LocalBedrock stand-in) Amazon Bedrock serves "
    assert bedrock.requests[-1].body["inferenceConfig"]["stopSequences"] == ["Llama"]


def test_no_relevant_passage_means_i_dont_know(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    answer = chat.invoke(f"{PASSAGES}\n\nQuestion: Who won the 1998 football world cup?")
    assert answer.text == "(LocalBedrock stand-in) I don't know based on the provided context."
    no_passages = chat.invoke("Question: What is TiDB?")
    assert no_passages.text == answer.text


def test_follow_up_question_is_rewritten(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    prompt = (
        "Rewrite the follow-up question as a standalone question.\n\n"
        "Chat history:\nHuman: What is TiDB?\nAI: A distributed SQL database. [1]\n\n"
        "Follow-up question: Does it support vectors?\nStandalone question:"
    )
    assert chat.invoke(prompt).text == "Does it support vectors? TiDB"


def test_multi_turn_uses_the_last_user_message(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    answer = chat.invoke(
        [
            SystemMessage(PASSAGES),
            HumanMessage("Where is the Eiffel Tower?"),
            AIMessage("In Paris. [3]"),
            HumanMessage("What does TiDB use for similarity queries?"),
        ]
    )
    assert answer.text.endswith("[2]")


def test_mid_stream_error_surfaces(bedrock: LocalBedrock) -> None:
    bedrock.stream_error_after(3, code="throttlingException", message="slow down")
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    with pytest.raises(EventStreamError) as info:
        list(chat.stream(f"{PASSAGES}\n\nQuestion: What does Bedrock serve?"))
    assert info.value.response["Error"]["Code"] == "throttlingException"


def test_bare_llama32_id_is_refused(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat("meta.llama3-2-3b-instruct-v1:0", endpoint_url=bedrock.endpoint_url)
    with pytest.raises(chat.client.exceptions.ValidationException, match="inference profile"):
        chat.invoke("hi")


def test_retries_keep_the_users_retry_mode(bedrock: LocalBedrock) -> None:
    user = Config(retries={"mode": "adaptive", "total_max_attempts": 9}, read_timeout=11)
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url, config=user, max_retries=1)
    config = chat.client.meta.config
    # botocore normalises max_attempts=1 (retries) to total_max_attempts=2.
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 2}
    assert config.read_timeout == 11
    assert chat.max_retries is None  # not handed to langchain-aws, which would drop the mode
    # max_attempts=1 retry -> two attempts in total.
    bedrock.fail_next(503, "ServiceUnavailableException", "busy", times=2)
    with pytest.raises(chat.client.exceptions.ServiceUnavailableException):
        chat.invoke("hi")
    assert [r.status for r in bedrock.requests] == [503, 503]


def test_max_retries_without_config(bedrock: LocalBedrock) -> None:
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url, max_retries=2)
    assert chat.client.meta.config.retries == {"total_max_attempts": 3, "mode": "standard"}
    bedrock.retry_after_ms = 1
    bedrock.fail_next(500, "InternalServerException", "boom", times=2)
    assert chat.invoke("hi").text
    assert [r.status for r in bedrock.requests] == [500, 500, 200]


@pytest.mark.parametrize("cls", [ChatBedrock, BedrockLLM])
def test_langchain_aws_invoke_model_streaming_with_meta(
    bedrock: LocalBedrock, cls: type[ChatBedrock] | type[BedrockLLM]
) -> None:
    model = cls(  # type: ignore[call-arg]  # pydantic aliases the stubs do not know
        model_id=DEFAULT_LLM_MODEL_ID, endpoint_url=bedrock.endpoint_url, region_name="us-east-1"
    )
    prompt = f"{PASSAGES}\n\nQuestion: Where is the Eiffel Tower?"
    chunks = [str(getattr(c, "text", c)) for c in model.stream(prompt)]
    assert len(chunks) > 3
    assert "".join(chunks).strip() == "(LocalBedrock stand-in) The Eiffel Tower is in Paris. [3]"
    record = bedrock.requests[-1]
    assert record.op == "InvokeModelWithResponseStream"
    assert set(record.body) <= {"prompt", "temperature", "top_p", "max_gen_len"}
