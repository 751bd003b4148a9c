"""create_llama3_chat builds langchain-aws' ``bedrock`` control-plane client only when used."""

from __future__ import annotations

import pytest

from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat


def test_the_control_plane_client_is_built_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    endpoint = "http://127.0.0.1:9"
    llm = create_llama3_chat(endpoint_url=endpoint, region_name="eu-west-1")
    lazy = llm.bedrock_client
    assert lazy._client is None  # nothing loaded while the model was built
    meta = lazy.meta  # first use (no request is sent: sockets are blocked here)
    assert meta.service_model.service_name == "bedrock"
    assert (meta.region_name, meta.endpoint_url) == ("eu-west-1", endpoint)
    assert lazy._client is not None
    assert llm.client.meta.service_model.service_name == "bedrock-runtime"


def test_a_given_control_plane_client_is_kept_and_resolves_a_profile() -> None:
    class Profiles:
        calls = 0

        def get_inference_profile(self, **kwargs: str) -> dict[str, list[dict[str, str]]]:
            Profiles.calls += 1
            arn = "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b-instruct-v1:0"
            return {"models": [{"modelArn": arn}]}

    given = Profiles()
    profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
    llm = create_llama3_chat(
        profile,
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        bedrock_client=given,
        provider="meta",
    )
    assert llm.bedrock_client is given
    assert Profiles.calls == 1
