"""Smoke test of `v4serve bench` on the tiny synthetic model: every figure of the report is
present and positive (no timing thresholds: the figures depend on the machine), batch-1 decode
reads the file's top-k experts per layer, and --experts-per-token is applied and validated."""

import json
import pathlib
import sys

import pytest

from conftest import run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle.models import tiny_model  # noqa: E402

# Small everywhere: this checks wiring and accounting, not speed. 64 MiB is still beyond the
# L2 of the CI machines, and the bandwidth figure is only checked to be positive.
FAST = ["--prompt-tokens", "16", "--decode-tokens", "4", "--decode-prompt-tokens", "4",
        "--bandwidth-mib", "64", "--threads", "2"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return tiny_model(tmp_path_factory, v4serve)


def bench_json(v4serve, model, *extra):
    result = run([v4serve, "bench", "--model", model, *FAST, "--json", *extra])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_json_reports_every_figure_positive(v4serve, model):
    report = bench_json(v4serve, model)
    assert report["token_ids"] == "synthetic"
    assert report["threads"] == 2
    assert report["prefill"]["tokens"] == 16
    assert report["prefill"]["tokens_per_second"] > 0
    assert [d["batch"] for d in report["decode"]] == [1, 16]
    for d in report["decode"]:
        assert d["tokens"] == 4 * d["batch"]
        for key in ("tokens_per_second", "weight_bytes_per_token", "achieved_bytes_per_second",
                    "percent_of_bandwidth"):
            assert d[key] > 0, key
        touched = d["weight_bytes_touched"]
        assert touched["total"] == (touched["matrices"] + touched["embedding_rows"]
                                    + touched["small_vectors"])
        assert 0 < touched["routed_experts"] < touched["matrices"]
        assert touched["total"] < report["model_tensor_bytes"] * d["steps"]
    bandwidth = report["memory_bandwidth"]
    assert bandwidth["bytes_per_second"] > 0 and bandwidth["threads"] == 2
    # One token per step at batch 1: exactly the file's top-k experts in every MoE layer.
    assert report["decode"][0]["routed_experts_per_step_per_layer"] == report["experts_per_token"]


def test_experts_per_token_override_reaches_the_forward(v4serve, model):
    report = bench_json(v4serve, model, "--batch", "1", "--experts-per-token", "4")
    assert report["experts_per_token"] == 4
    assert report["decode"][0]["routed_experts_per_step_per_layer"] == 4


def test_bad_experts_per_token_is_one_line_error(v4serve, model):
    result = run([v4serve, "bench", "--model", model, *FAST, "--experts-per-token", "99"])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "experts per token 99 is outside 1..16" in lines[0]


def test_text_report_names_the_figures(v4serve, model):
    result = run([v4serve, "bench", "--model", model, *FAST, "--batch", "1"])
    assert result.returncode == 0, result.stderr
    for needle in ("token ids: synthetic", "prefill:", "decode batch 1:",
                   "weights touched per token", "memory bandwidth:", "batch-1 decode roofline:"):
        assert needle in result.stdout, needle


SYNTHETIC = ["--synthetic", "tiny", "--layers", "8", "--experts", "32"]


def test_synthetic_full_scale_model_is_scaled_up_on_the_device(v4serve):
    # The template (5 layers, 8 experts) is scaled to 8 layers and 32 experts as the device copy
    # is made; routers are generated for all 32, so a batch selects experts beyond the template's.
    # (No decode-step recording first: it is another test's, and half this one's time.)
    result = run([v4serve, "bench", *SYNTHETIC, "--template-experts", "8", *FAST, "--device",
                  "emulated", "--json", "--graph-capture-seconds", "0"])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"].startswith("synthetic tiny, 8 layers, 32 experts, ds4-q2")
    assert report["decode"][0]["routed_experts_per_step_per_layer"] == report["experts_per_token"]
    assert report["decode"][1]["routed_experts_per_step_per_layer"] > 8
    assert "writing the template (5 layers, 8 experts" in result.stderr


@pytest.mark.parametrize("extra, message", [
    (["--device", "cpu"], "--synthetic scales the weights up as they are copied to a device"),
    (["--device", "emulated", "--template-experts", "4"], "is fewer than the experts per token"),
    (["--device", "emulated", "--template-experts", "7"], "are not a multiple of"),
    (["--device", "emulated", "--model", "x.gguf"], "--model and --synthetic exclude each other"),
])
def test_bad_synthetic_flags_are_one_line_errors(v4serve, extra, message):
    result = run([v4serve, "bench", *SYNTHETIC, *FAST, *extra])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# One prefill and one decode step: these runs check which layers are measured, not the figures.
QUICK = ["--prompt-tokens", "4", "--decode-tokens", "1", "--decode-prompt-tokens", "2",
         "--batch", "1", "--bandwidth-mib", "16", "--threads", "2", "--step-graphs", "0",
         "--template-experts", "8"]


def test_layers_fit_measures_the_most_layers_the_device_holds(v4serve):
    # A device smaller than every layer (an 80 GB GPU and the 82.7 GB model) measures the most
    # layers whose plan fits in 90% of its free memory, the share the KV default fills. The plans
    # of 20 and 21 layers, from the fit check of two runs on an unbounded device, set a device
    # size between them: the fit must then take 20, and its own plan must be the 20-layer one.
    def bench(layers, device):
        return run([v4serve, "bench", "--synthetic", "tiny", "--layers", layers, *QUICK,
                    "--device", device, "--json"])

    def planned(result):
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["device_memory"]["planned_bytes"]

    need = {n: planned(bench(str(n), "emulated")) for n in (20, 21)}
    assert need[20] < need[21]
    size_gib = (need[20] + need[21]) / 2 / 0.9 / 2**30
    fit = bench("fit", f"emulated:{size_gib:.9f}")
    assert fit.returncode == 0, fit.stderr
    report = json.loads(fit.stdout)
    assert report["layers"] == 20
    assert "20 layers (the first 20 of 43: as many as fit the device)" in report["model"]
    assert report["device_memory"]["planned_bytes"] == need[20]
    assert report["device_memory"]["free_bytes"] == int(size_gib * 2**30)
    # Where every layer fits, every layer is measured, and the report says nothing of a cut.
    whole = bench("fit", "emulated")
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["layers"] == 43
    assert "as many as fit" not in json.loads(whole.stdout)["model"]


@pytest.mark.parametrize("layers, device, message", [
    ("fit", "emulated:0.001", "--layers fit: not even 5 layers fit the device"),
    ("0", "emulated", "--layers: \"0\" is neither a layer count in 1..4096 nor fit"),
    ("most", "emulated", "--layers: \"most\" is neither a layer count"),
])
def test_bad_layer_counts_are_one_line_errors(v4serve, layers, device, message):
    result = run([v4serve, "bench", "--synthetic", "tiny", "--layers", layers, *QUICK,
                  "--device", device])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1], result.stderr
    assert not any(line.startswith("device memory:") for line in lines), result.stderr


@pytest.mark.parametrize("batches, bad", [
    ("0", "0"), ("1,4097", "4097"), ("1,x", "x"), ("2.5", "2.5"),
    ("99999999999999999999", "99999999999999999999"), ("1,,2", ""),
])
def test_bad_batch_sizes_are_one_line_errors(v4serve, batches, bad):
    i = QUICK.index("--batch")
    flags = QUICK[:i] + ["--batch", batches] + QUICK[i + 2:]
    result = run([v4serve, "bench", "--synthetic", "tiny", *flags])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f'error: --batch: "{bad}" is not a batch size in 1..4096', \
        result.stderr


def test_layers_need_a_synthetic_model(v4serve, model):
    result = run([v4serve, "bench", "--model", model, "--layers", "4", *QUICK])
    assert result.returncode != 0
    assert result.stderr.strip() == "error: --layers needs --synthetic", result.stderr


def test_a_missing_gpu_is_said_before_the_template_is_written(v4serve):
    # The full-scale template takes minutes to write: a device that cannot be used is one line
    # at once, not an error after the work.
    result = run([v4serve, "bench", *SYNTHETIC, *FAST, "--device", "cuda"])
    if result.returncode == 0:
        pytest.skip("this machine has a usable GPU")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: "), result.stderr
    assert "writing the template" not in result.stderr


def test_device_decode_is_timed_with_and_without_step_graphs(v4serve, model):
    # On a device backend every padded batch size up to the largest (4, 2 and 1 rows for batches
    # of 1 and 3) is recorded before the decode passes, as a server does at start, for three
    # sampling kinds; every timed step then runs from a recording (none is made while timing,
    # the prefills between them move nothing a recording uses), and is timed again without.
    steps = 4
    report = bench_json(v4serve, model, "--device", "emulated", "--batch", "1,3")
    start = report["start_graphs"]
    assert start["batch_sizes"] == [4, 2, 1], start
    assert start["recorded"] == start["shapes"] == 9, start
    assert start["stopped"] == "", start
    for d in report["decode"]:
        assert d["replayed_steps"] == steps, d
        assert d["seconds_without_graphs"] > 0, d
        assert d["capture_seconds"] == 0, d
    # Without recording at start each shape is recorded on its second step.
    lazy = bench_json(v4serve, model, "--device", "emulated", "--batch", "1",
                      "--graph-capture-seconds", "0")
    assert lazy["start_graphs"]["batch_sizes"] == []
    assert lazy["decode"][0]["replayed_steps"] == steps - 1
    off = bench_json(v4serve, model, "--device", "emulated", "--batch", "1", "--step-graphs", "0")
    assert off["decode"][0]["replayed_steps"] == 0
    assert off["decode"][0]["seconds_without_graphs"] == 0
    # A step's kernel launches are counted where nothing replays: the pass without recordings,
    # or the only pass when there are none; the same steps launch the same kernels either way.
    launches = report["decode"][0]["kernel_launches_per_step"]
    assert launches > 0 and launches == off["decode"][0]["kernel_launches_per_step"], (report, off)
    # The CPU backend records nothing: nothing is timed twice.
    cpu = bench_json(v4serve, model, "--batch", "1")
    assert cpu["decode"][0]["replayed_steps"] == 0
    assert cpu["decode"][0]["seconds_without_graphs"] == 0
    assert cpu["decode"][0]["kernel_launches_per_step"] == 0
    assert "records no step graphs" in cpu["start_graphs"]["stopped"]


def test_step_memory_beyond_weights_and_kv_is_reported(v4serve, model):
    # The device's step workspace is sized for the largest step the benchmark runs (its prompt
    # here), and the kernels' scratch was reserved before the first step to what the fit check
    # counted (the bound on the requests): no step grew it, and what the ops asked for is within
    # it. The CPU keeps no scratch on a device.
    device = bench_json(v4serve, model, "--device", "emulated", "--batch", "1",
                        "--graph-capture-seconds", "0")
    memory = device["step_memory"]
    assert memory["max_tokens"] >= 1, memory
    assert memory["workspace_bytes"] > 0, memory
    assert 0 < memory["kernel_scratch_bytes"] == memory["kernel_scratch_reserved_bytes"], memory
    requested = memory["kernel_scratch_requested_bytes"]
    assert 0 < requested <= memory["kernel_scratch_reserved_bytes"], memory
    cpu = bench_json(v4serve, model, "--batch", "1")
    assert cpu["step_memory"]["kernel_scratch_bytes"] == 0, cpu["step_memory"]
    assert cpu["step_memory"]["kernel_scratch_reserved_bytes"] == 0, cpu["step_memory"]
