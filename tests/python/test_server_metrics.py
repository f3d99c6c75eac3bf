"""vLLM's metric names on /metrics, with values checked against what the requests did."""

import pathlib
import re
import sys

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from server import Server, metric_values  # noqa: E402

MODEL = "tiny"


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def total(text, name):
    values = metric_values(text, name)
    assert values, f"{name} is missing"
    return sum(values.values())


def test_vllm_request_metrics_cache_config_and_prefix_queries(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--kv-memory", "256") as s:
        # A prompt that does not fill whole pages, sent twice: the second finds the first's pages.
        prompt = "lighthouse keeper " * 150
        usages = []
        for n in (1, 1, 2):
            r = httpx.post(s.url + "/v1/completions", timeout=120, json={
                "model": MODEL, "prompt": prompt, "max_tokens": 5, "n": n, "temperature": 0,
                "ignore_eos": True})
            assert r.status_code == 200, r.text
            usages.append(r.json()["usage"])
            if len(usages) == 2:
                two = httpx.get(s.url + "/metrics", timeout=30).text
        text = httpx.get(s.url + "/metrics", timeout=30).text

    prompt_tokens = usages[0]["prompt_tokens"]
    info = metric_values(text, "v4serve:cache_config_info")
    assert len(info) == 1 and list(info.values()) == [1.0], info
    labels = next(iter(info))
    for label in ("block_size=", "cache_dtype=", "enable_prefix_caching=\"True\"",
                  "num_gpu_blocks="):
        assert label in labels, labels
    page = int(labels.split('block_size="')[1].split('"')[0])
    assert prompt_tokens % page != 0  # the last page is partial
    # Every prompt token of every request that looked the cache up is a query (vLLM's count);
    # the hits are what the requests reported as cached.
    assert total(two, "v4serve:prefix_cache_queries_total") == 2 * prompt_tokens
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages[:2])
    assert cached > 0
    assert total(two, "v4serve:prefix_cache_hits_total") == cached
    # n=2 runs as two engine requests, each looking the cache up.
    assert total(text, "v4serve:prefix_cache_queries_total") == 4 * prompt_tokens

    # Per-request histograms: one observation per request, with the request's parameters.
    assert total(text, "v4serve:request_params_n_count") == 3
    assert total(text, "v4serve:request_params_n_sum") == 4
    assert total(text, "v4serve:request_params_max_tokens_sum") == 15
    assert total(text, "v4serve:request_max_num_generation_tokens_sum") == 15
    for name in ("request_time_per_output_token_seconds", "request_inference_time_seconds",
                 "request_prefill_time_seconds", "request_decode_time_seconds"):
        assert total(text, f"v4serve:{name}_count") == 3, name
        assert total(text, f"v4serve:{name}_sum") > 0, name
    # Engine steps: every prefill and decode token is in some step.
    steps = total(text, "v4serve:iteration_tokens_total_count")
    assert steps == total(text, "v4serve:batch_size_count") and steps > 0
    assert total(text, "v4serve:iteration_tokens_total_sum") >= 4 * 5


def expert_series(url):
    text = httpx.get(url + "/metrics", timeout=30).text
    return (metric_values(text, "v4serve:expert_selections_total"),
            metric_values(text, "v4serve:expert_layer_selections_total"),
            metric_values(text, "v4serve:expert_load_imbalance"))


def test_expert_load_is_summarised_per_layer_unless_detail_is_asked(v4serve, model):
    def run(*flags):
        with Server(v4serve, model, "--served-model-name", MODEL, "--kv-memory", "256",
                    *flags) as s:
            r = httpx.post(s.url + "/v1/completions", timeout=120, json={
                "model": MODEL, "prompt": "harbour lights " * 20, "max_tokens": 3,
                "temperature": 0, "ignore_eos": True})
            assert r.status_code == 200, r.text
            return expert_series(s.url)

    detail, layers, imbalance = run()
    assert not detail, "per-(layer, expert) series without --metrics-expert-detail"
    assert layers and imbalance
    assert len(layers) == len(imbalance)
    assert all(v > 0 for v in layers.values())
    for value in imbalance.values():
        assert value >= 1.0  # the busiest expert is at least the mean

    def layer_of(labels):
        return re.search(r'layer="(\d+)"', labels).group(1)

    summary = {layer_of(labels): value for labels, value in layers.items()}

    detail, _, _ = run("--metrics-expert-detail")
    assert detail
    per_layer = {}
    for labels, value in detail.items():
        per_layer[layer_of(labels)] = per_layer.get(layer_of(labels), 0) + value
    # The same requests on a fresh server: the detail sums to the summary, layer by layer.
    assert per_layer == summary
