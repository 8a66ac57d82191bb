import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name, directory="benchmarks"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, directory, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jax_example(name):
    """`examples/<name>.py`, loaded; the examples run once, on JAX."""
    import pytest

    from tests.conftest import BACKEND

    if BACKEND != "jax":
        pytest.skip("the examples run once, on JAX; their distillers are tested on every backend")
    pytest.importorskip("keras_hub")
    return load(name, "examples")


def test_feature_methods_quick(tmp_path):
    output = tmp_path / "table.md"
    rows = load("feature_methods").main(["--quick", "--output", str(output)])
    assert [row[0] for row in rows][:2] == ["teacher", "thin student from scratch"]
    assert len(rows) == 8 and all(0.0 <= row[3] <= 1.0 for row in rows)
    text = output.read_text()
    assert "FSPDistiller" in text and "HintDistiller" in text and text.count("\n| ") == 9


def test_online_methods_quick(tmp_path):
    output = tmp_path / "tables.md"
    text = load("online_methods").main(["--quick", "--output", str(output)])
    assert output.read_text().strip() == text.strip()
    for row in ("| mlp |", "| cnn |", "student distilled through the assistant", "student distilled from the teacher"):
        assert row in text


def test_step_time_quick(tmp_path):
    from tests.conftest import BACKEND

    output = tmp_path / "step_time.md"
    # Peak memory spawns one process per run: measured on one backend only.
    result = load("step_time").main(
        ["--quick", "--output", str(output)] + ([] if BACKEND == "jax" else ["--no-memory"])
    )
    assert set(result["ratios"]) == {"a", "b", "c", "d", "e", "f"} and result["ratios"]["a"] == 1.0
    assert all(ratio > 0 for ratio in result["ratios"].values())
    assert 1.5 < result["floor"] < 1.8  # (784*1200 + 1200*1200 + 12000) / (3 * 1,274,400) + 1
    text = output.read_text()
    assert text.count("Analytic floor") == 2 and text.count(": met") + text.count(": MISSED") == 4
    if BACKEND == "jax":
        assert all(value > 0 for value in result["memory"].values())


def test_byte_level_lm_quick(tmp_path):
    import pytest

    rows = jax_example("byte_level_lm").main(["--quick", "--output", str(tmp_path)])
    names = [row[0] for row in rows]
    assert names[:2] == ["teacher", "student from scratch"] and len(rows) == 9
    assert all(1.0 < row[2] < 300.0 for row in rows)  # perplexity per byte, vocabulary 256
    perplexity = {name.split(" (")[0]: value for name, _, value, _ in rows}
    # Same initial weights, same batches: the chunked loss trains the student
    # the dense one does.
    assert perplexity["off-policy KD, chunked"] == pytest.approx(perplexity["off-policy KD, dense logits"], rel=1e-3)
    assert any(name.startswith("on-policy KD") for name in names)
    assert any(name.startswith("sequence-level KD") for name in names)
    assert names[-2:] == ["BPE student (320 tokens) from scratch", "BPE student distilled from the byte teacher (ULD)"]
    assert (tmp_path / "student.keras").exists() and "| teacher |" in (tmp_path / "results.md").read_text()


def test_stdlib_lm_quick(tmp_path):
    import json

    import pytest

    store = tmp_path / "teachers"
    table = jax_example("stdlib_lm").main(
        ["--quick", "--seeds", "2", "--output", str(tmp_path), "--teacher-store", str(store)]
    )
    methods = [
        "student from scratch",
        "dense logits (Distiller)",
        "cached top-4 from disk",
        "chunked (CausalLMDistiller)",
        "on-policy (OnPolicyDistiller)",
        "sequence-level (teacher's samples)",
    ]
    assert list(table) == ["teacher", *methods]
    # Every method, every seed, a perplexity per byte of a 256-byte vocabulary.
    assert all(
        len(table[m]["perplexity"]) == 2 and all(1.0 < v < 300.0 for v in table[m]["perplexity"]) for m in methods
    )
    # The same over the bytes after each window's prompt, which every method learns.
    assert all(
        len(table[m]["after_prompt"]) == 2 and all(1.0 < v < 300.0 for v in table[m]["after_prompt"]) for m in methods
    )
    scratch = table["student from scratch"]["mean"]
    assert table["dense logits (Distiller)"]["change"] == pytest.approx(
        table["dense logits (Distiller)"]["mean"] / scratch - 1
    )
    # Same initial weights, same batches: the chunked loss trains the student the dense one does.
    assert table["chunked (CausalLMDistiller)"]["perplexity"] == pytest.approx(
        table["dense logits (Distiller)"]["perplexity"], rel=1e-3
    )
    # The teacher trained in rounds until 15% below scratch, or for --max-rounds (2).
    rounds = table["teacher"]["rounds"]
    assert 1 <= len(rounds) <= 2 and (rounds[-1] <= 0.85 * scratch or len(rounds) == 2)
    assert len(list(store.glob("stdlib_lm_teacher-*.weights.h5"))) == len(rounds)
    assert json.loads((tmp_path / "teacher_cache" / "manifest.json").read_text())["top_k"] == 4
    text = (tmp_path / "results.md").read_text()
    assert "| teacher |" in text and text.count("| ") >= 7 and "target -5%" in text
    assert json.loads((tmp_path / "results.json").read_text())["teacher"]["rounds"] == rounds


def test_tuning_quick(tmp_path):
    import pytest

    from tests.conftest import BACKEND

    if BACKEND != "tensorflow":
        pytest.skip("the tuning benchmark runs once, on TensorFlow; kd.tune is tested on every backend")
    pytest.importorskip("keras_tuner")
    output = tmp_path / "tuning.md"
    result = load("tuning").main(["--quick", "--output", str(output)])
    random = result["searches"]["random"]
    assert random["trials"] == 3 and random["epochs"] == 3 * 2 and result["ratio"] > 0
    assert len(result["alone"]) == 3 and 0.5 < random["labels only"] <= 1.0
    text = output.read_text()
    assert (
        "(b) kd.tune, random search" in text
        and "labels only (alpha = 1)" in text
        and text.count(": met") + text.count(": MISSED") == 2
    )


def test_deploy_quick(tmp_path):
    import pytest

    from tests.conftest import BACKEND

    if BACKEND != "tensorflow":
        pytest.skip(
            "the deployment benchmark runs once, on TensorFlow; quantize_student and export run on every backend"
        )
    pytest.importorskip("onnxruntime")
    output = tmp_path / "deploy.md"
    measured = load("deploy").main(["--quick", "--students", "mlp", "--formats", "onnx", "--output", str(output)])
    assert set(measured["mlp"]) == {
        "float32",
        "int8 post-training",
        "int8 recovered (LoRA + KD)",
        "int8 quantization-aware KD",
        "int4 post-training",
        "int4 recovered (LoRA + KD)",
        "int4 quantization-aware KD",
    }
    assert all(0.1 < accuracy <= 1.0 for accuracy in measured["mlp"].values())
    text = output.read_text()
    assert text.count("| onnx |") == 7 and text.count("Target int") == 2


def test_lm_memory_quick(tmp_path):
    import pytest

    from tests.conftest import BACKEND

    if BACKEND != "jax":
        pytest.skip("the memory benchmark reads XLA's memory analysis: JAX only")
    output = tmp_path / "lm_memory.md"
    rows = load("lm_memory").main(["--quick", "--output", str(output)])
    ((vocabulary, dense_peak, chunked_peak, _, _, loss_difference, gradient_difference),) = rows
    assert vocabulary == 2048 and chunked_peak < dense_peak
    assert loss_difference < 1e-5 and gradient_difference < 1e-5
    assert "| 2,048 |" in output.read_text()


def test_gpu_script_quick_writes_one_table(tmp_path):
    import subprocess
    import sys

    import pytest

    from tests.conftest import BACKEND

    if BACKEND != "jax":
        pytest.skip("benchmarks/gpu.sh runs JAX")
    output = tmp_path / "gpu.md"
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), "--quick", str(output)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = output.read_text()
    assert text.startswith("## One GPU: ")
    assert "### Epoch time" in text and "### Language-model loss path" in text
    assert "### Language-model distillation" in text and "| student from scratch |" in text
    assert text.count("Targets") == 2


def test_gpu_script_refuses_a_machine_without_a_gpu(tmp_path):
    import subprocess
    import sys

    import pytest

    from tests.conftest import BACKEND

    if BACKEND != "jax":
        pytest.skip("benchmarks/gpu.sh runs JAX")
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), str(tmp_path / "gpu.md")],
        env={**os.environ, "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "needs JAX with a GPU" in result.stderr
    assert not (tmp_path / "gpu.md").exists()


def test_teacher_cache_quick(tmp_path):
    from tests.conftest import BACKEND

    if BACKEND != "jax":
        import pytest

        pytest.skip("the benchmark runs its probes on JAX; the cache itself is tested on every backend")
    output = tmp_path / "cache.md"
    result = load("teacher_cache").main(["--quick", "--output", str(output)])
    names = [row[0] for row in result["rows"]]
    assert names == ["1x in memory", "1x streamed from disk", "4x streamed from disk", "16x streamed from disk"]
    assert all(row[2]["peak_mb"] > 0 and row[2]["steps_per_second"] > 0 for row in result["rows"])
    assert result["memory_ratio"] > 0 and result["speed_ratio"] > 0
    text = output.read_text()
    assert text.count("\n| ") == 5 and "Targets:" in text


def test_lm_recipe_quick(tmp_path):
    table = jax_example("lm_recipe").main(
        ["--quick", "--seeds", "1", "--parts", "cut,continue,wide", "--output", str(tmp_path)]
        + ["--teacher-store", str(tmp_path / "teachers")]
    )
    methods = [
        "distilled, random start",
        "cut from the teacher, before training",
        "cut, labels only",
        "cut, distilled",
        "1 layers x 32: distilled, random start",
        "1 layers x 32: cut, distilled",
        "+ off-policy (Distiller, JSD)",
        "+ on-policy (OnPolicyDistiller, lmbda 0.5)",
        "+ on-policy (OnPolicyDistiller, lmbda 1.0)",
    ]
    assert list(table) == ["student from scratch", *methods]
    for method in methods:
        assert all(1.0 < v < 300.0 for v in table[method]["perplexity"])
        # The teacher's judgement of the student's samples: a KL, >= 0, finite.
        assert all(0.0 <= v < 10.0 for v in table[method]["reverse_kl"])
    # Cut from a teacher that trained: better than the random start before any step.
    assert table["cut from the teacher, before training"]["mean"] < table["student from scratch"]["mean"]
    text = (tmp_path / "results.md").read_text()
    assert text.count("target: lowered more") == 2 and text.count("target -10%") == 2


def test_top_k_gap_quick(tmp_path):
    table = jax_example("top_k_gap").main(
        ["--quick", "--seeds", "1", "--ks", "8,32", "--output", str(tmp_path)]
        + ["--teacher-store", str(tmp_path / "teachers")]
    )
    methods = [
        "dense logits",
        "dense logits (float16), streamed from disk (shard order)",
        "top-8, in memory (the dense run's batch order)",
        "top-8, streamed from disk (shard order)",
        "top-32, in memory (the dense run's batch order)",
        "top-32, streamed from disk (shard order)",
    ]
    assert list(table) == ["scratch", *methods]
    assert all(1.0 < table[m]["mean"] < 300.0 for m in methods)
    # More of the teacher's distribution kept: closer to the dense run.
    dense = table["dense logits"]["mean"]
    assert abs(table["top-32, in memory (the dense run's batch order)"]["mean"] - dense) <= abs(
        table["top-8, in memory (the dense run's batch order)"]["mean"] - dense
    )
    assert "Within 3 points of dense" in (tmp_path / "results.md").read_text()
