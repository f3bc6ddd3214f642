"""ModelBuilder (onnxruntime-genai's builder) on tiny random-weight causal LMs built in code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from olivine.errors import PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.passes import PASSES, PassContext
from tiny_llm import write_causal_lm, write_text_calibration
from tiny_models import handle

PROMPT = [1, 5, 9, 40, 77]


def build(model: ModelHandle, output_dir: Path, **params: Any) -> ModelHandle:
    cls = PASSES.get("ModelBuilder")
    config = cls.config_class.model_validate(params)
    output_dir.mkdir(parents=True, exist_ok=True)
    instance = cls()
    out = instance.run(model, config, output_dir, PassContext())
    instance.check_output(out)
    return out


def nodes(model: ModelHandle, op_type: str) -> list[dict[str, Any]]:
    graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
    return [
        {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        for n in graph.node
        if n.op_type == op_type
    ]


def generate(folder: Path, max_length: int | None = None) -> tuple[list[int], np.ndarray]:
    """Greedy generation with onnxruntime-genai; returns the sequence and the prompt's last logits."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    if max_length is not None:
        params.set_search_options(max_length=max_length)
    generator = og.Generator(model, params)
    generator.append_tokens(PROMPT)
    logits = np.asarray(generator.get_output("logits"))
    while not generator.is_done():
        generator.generate_next_token()
    return [int(t) for t in generator.get_sequence(0)], logits.reshape(-1, logits.shape[-1])[-1]


def torch_greedy(folder: str, max_length: int) -> tuple[list[int], np.ndarray]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([PROMPT])
    with torch.inference_mode():
        logits = model(ids).logits[0, -1].numpy()
        out = model.generate(ids, max_length=max_length, do_sample=False, pad_token_id=0, eos_token_id=2)
    return [int(t) for t in out[0]], logits


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return handle(write_causal_lm(tmp_path_factory.mktemp("llama"), "llama"))


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return handle(write_causal_lm(tmp_path_factory.mktemp("qwen2"), "qwen2"))


@pytest.mark.integration
def test_model_builder_int4_writes_matmulnbits_genai_config_and_tokenizer(
    llama: ModelHandle, tmp_path: Path
) -> None:
    out = build(llama, tmp_path / "out", precision="int4", int4_block_size=32, int4_accuracy_level=4)

    names = {p.name for p in tmp_path.joinpath("out").iterdir()}
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json", "config.json"} <= names
    assert out.kind == "onnx" and out.onnx_path == tmp_path / "out" / "model.onnx"
    quantized = nodes(out, "MatMulNBits")
    # 2 layers x (qkv, o, gate, up, down) + lm_head
    assert len(quantized) == 11 and not nodes(out, "MatMul")
    assert {(q["bits"], q["block_size"], q["accuracy_level"]) for q in quantized} == {(4, 32, 4)}
    sequence, _ = generate(tmp_path / "out", max_length=16)
    assert len(sequence) == 16 and sequence[: len(PROMPT)] == PROMPT
    # onnxruntime-genai's tokenizer reads the tokenizer files transformers 4.x saved, and agrees with it.
    import onnxruntime_genai as og
    from transformers import AutoTokenizer

    text = "the quick brown fox"
    expected = AutoTokenizer.from_pretrained(str(llama.model_path))(text)["input_ids"]
    tokenizer = og.Tokenizer(og.Model(str(tmp_path / "out")))
    assert [int(t) for t in tokenizer.encode(text)] == expected
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_model_builder_extra_options_filename_names_the_graph(llama: ModelHandle, tmp_path: Path) -> None:
    # Olive's vision-language recipes build the text part as text.onnx.
    out = build(llama, tmp_path / "out", precision="fp32", extra_options={"filename": "text.onnx"})
    assert out.onnx_path == tmp_path / "out" / "text.onnx" and out.onnx_path.is_file()
    config = json.loads((tmp_path / "out" / "genai_config.json").read_text())
    assert config["model"]["decoder"]["filename"] == "text.onnx"
    sequence, _ = generate(tmp_path / "out", max_length=8)
    assert sequence[: len(PROMPT)] == PROMPT


@pytest.mark.integration
def test_model_builder_int4_phi3_generates(tmp_path: Path) -> None:
    phi3 = handle(write_causal_lm(tmp_path / "phi3", "phi3"))
    build(phi3, tmp_path / "out", precision="int4")

    sequence, logits = generate(tmp_path / "out", max_length=12)
    assert len(sequence) == 12 and np.isfinite(logits).all()


@pytest.mark.integration
def test_model_builder_fp32_generates_what_pytorch_generates(qwen2: ModelHandle, tmp_path: Path) -> None:
    out = build(qwen2, tmp_path / "out", precision="fp32", search={"max_length": 20})

    assert len(nodes(out, "MatMul")) == 11 and not nodes(out, "MatMulNBits")
    genai_config = json.loads((tmp_path / "out" / "genai_config.json").read_text())
    assert genai_config["search"]["max_length"] == 20  # merged over the builder's default
    sequence, logits = generate(tmp_path / "out")
    expected, expected_logits = torch_greedy(str(qwen2.model_path), 20)
    assert sequence == expected
    np.testing.assert_allclose(logits, expected_logits, atol=1e-4)


@pytest.mark.integration
def test_model_builder_int8_uses_8_bit_weights_and_stays_close_to_fp32(
    llama: ModelHandle, tmp_path: Path
) -> None:
    out = build(llama, tmp_path / "int8", precision="int8")

    assert {q["bits"] for q in nodes(out, "MatMulNBits")} == {8}
    _, logits = generate(tmp_path / "int8", max_length=8)
    _, reference = torch_greedy(str(llama.model_path), 8)
    cosine = float(logits @ reference / (np.linalg.norm(logits) * np.linalg.norm(reference)))
    assert cosine > 0.999


@pytest.mark.integration
def test_model_builder_exclude_embeds_and_lm_head_change_the_graph_io(
    llama: ModelHandle, tmp_path: Path
) -> None:
    out = build(llama, tmp_path / "out", precision="fp32", exclude_embeds=True, exclude_lm_head=True)

    graph = onnx.load(str(out.onnx_path), load_external_data=False).graph
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    assert "inputs_embeds" in inputs and "input_ids" not in inputs
    assert "hidden_states" in outputs and "logits" not in outputs


@pytest.mark.integration
def test_model_builder_metadata_only_adds_genai_config_to_an_onnx_model(
    llama: ModelHandle, tmp_path: Path
) -> None:
    built = build(llama, tmp_path / "built", precision="fp32")
    (tmp_path / "built" / "genai_config.json").unlink()

    out = build(built, tmp_path / "meta", metadata_only=True, search={"max_length": 12})

    folder = tmp_path / "meta"
    assert out.onnx_path == folder / "model.onnx"
    assert {"genai_config.json", "model.onnx", "model.onnx.data", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    sequence, _ = generate(folder)
    assert len(sequence) == 12


@pytest.mark.integration
def test_model_builder_metadata_only_refuses_an_hf_model(llama: ModelHandle, tmp_path: Path) -> None:
    with pytest.raises(PassRunError, match="metadata_only: true needs an ONNXModel"):
        build(llama, tmp_path / "out", metadata_only=True)


def test_model_builder_refuses_gpu_only_options_on_cpu() -> None:
    cls = PASSES.get("ModelBuilder")
    cpu = Accelerator()
    fp16 = cls.config_class.model_validate({"precision": "fp16"})
    graph = cls.config_class.model_validate({"precision": "int4", "enable_cuda_graph": True})
    assert "fp16 is not supported on the CPU" in (cls.invalid_reason(fp16, cpu) or "")
    assert (cls.invalid_reason(graph, cpu) or "").startswith("enable_cuda_graph:")
    cuda = Accelerator(device="gpu", execution_providers=("CUDAExecutionProvider",))
    assert cls.invalid_reason(fp16, cuda) is None
    with pytest.raises(PassRunError, match="fp16"):
        cls().run(ModelHandle(kind="hf", config={}), fp16, Path("unused"), PassContext())


def test_model_builder_config_refuses_unknown_search_option_and_block_size() -> None:
    cls = PASSES.get("ModelBuilder")
    with pytest.raises(ValidationError, match="unknown generator search option"):
        cls.config_class.model_validate({"search": {"max_lenght": 10}})
    with pytest.raises(ValidationError, match="int4_block_size"):
        cls.config_class.model_validate({"int4_block_size": 48})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"search": {"max_length": 0}}, "search.max_length: must be >= 1"),
        ({"search": {"max_length": "abc"}}, "search.max_length: must be a whole number"),
        ({"search": {"top_p": 5}}, "search.top_p: must be in"),
        ({"search": {"temperature": -1.0}}, "search.temperature: must be > 0"),
        ({"search": {"do_sample": "yes"}}, "search.do_sample: must be true or false"),
        (
            {"search": {"num_beams": 4, "num_return_sequences": 8}},
            "num_return_sequences must be <= num_beams",
        ),
        (
            {"extra_options": {"exclude_embeds": [1, 2]}},
            "extra_options.exclude_embeds: a builder option takes",
        ),
        (
            {"extra_options": {"filename": "../evil.onnx"}},
            "extra_options.filename: a file name ending in .onnx",
        ),
        ({"extra_options": {"filename": "model.bin"}}, "extra_options.filename: a file name ending in .onnx"),
        (
            {"metadata_only": True, "extra_options": {"filename": "text.onnx"}},
            "extra_options.filename with metadata_only",
        ),
        ({"extra_options": {"config_only": True}}, "set metadata_only"),
        (
            {"extra_options": {"int4_accuracy_levle": 4}},
            "extra_options.int4_accuracy_levle: not an option of onnxruntime-genai 0.15.2's model builder, "
            "which would ignore it; did you mean 'int4_accuracy_level'?",
        ),
        ({"extra_options": {"quant_mode": "int4"}}, "extra_options.quant_mode: not an option"),
        ({"extra_options": {"hf_token": "hf_abc"}}, "extra_options.hf_token: only true or false here"),
    ],
)
def test_model_builder_generator_and_builder_options_are_checked_at_config_time(
    params: dict[str, Any], message: str
) -> None:
    """They were written to genai_config.json as given (max_length 0 still generated 20 tokens) or failed
    deep in the builder after the whole build."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        PASSES.get("ModelBuilder").config_class.model_validate(params)


def test_model_builder_takes_every_option_the_builder_reads_and_olives_recipes_set() -> None:
    """The config-time list of builder options is the pinned builder's: every key its source reads from
    extra_options is accepted (a refused one would block a working config), as are the keys Olive's
    recipes set, the int4_ aliases and the environment-token switch."""
    import onnxruntime_genai.models.builder as builder

    source = "\n".join(
        path.read_text(encoding="utf-8") for path in Path(builder.__file__).parent.rglob("*.py")
    )
    read = set(re.findall(r'extra_options(?:\.get\(|\[)"(\w+)"', source))
    read |= set(re.findall(r'"(\w+)" in extra_options', source))
    read -= {"hf_details"}  # the builder's own record, set by check_extra_options
    assert len(read) > 20
    recipes = {
        "filename": "text.onnx",
        "include_hidden_states": True,
        "prune_lm_head": True,
        "int4_accuracy_level": 4,
        "exclude_embeds": True,
        "hf_token": "false",
    }
    config_class = PASSES.get("ModelBuilder").config_class
    values = {"filename": "part.onnx", "hf_token": "false", "op_types_to_quantize": "MatMul"}
    for key in sorted(read - {"config_only"}):
        config_class.model_validate({"extra_options": {key: values.get(key, "1")}})
    config_class.model_validate({"extra_options": recipes})
    with pytest.raises(ValidationError, match="set metadata_only: true instead"):  # the pass's own
        config_class.model_validate({"extra_options": {"config_only": "1"}})


def test_model_builder_hf_token_refusal_does_not_echo_the_token(tmp_path: Path) -> None:
    from olivine.api import load
    from olivine.errors import ConfigError

    secret = "hf_" + "Zq7" * 10
    path = tmp_path / "cfg.json"
    path.write_text(
        json.dumps(
            {
                "input_model": write_causal_lm(tmp_path / "llm", "qwen2"),
                "passes": {"b": {"type": "ModelBuilder", "extra_options": {"hf_token": secret}}},
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "extra_options.hf_token: only true or false" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value.__cause__ or "") + repr(caught.value.__context__ or "")


def test_model_builder_refuses_a_folder_without_a_tokenizer_before_building(
    llama: ModelHandle, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(str(llama.model_path), folder)
    for name in ("tokenizer.json", "tokenizer.model"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(PassRunError, match=r"has no tokenizer \(tokenizer.json or tokenizer.model\)"):
        build(llama.with_config(model_path=str(folder)), tmp_path / "out", precision="fp32")


def test_model_builder_declares_olives_search_values() -> None:
    cls = PASSES.get("ModelBuilder")
    assert cls.search_values["int4_block_size"] == (32, 64, 128)
    assert cls.search_values["int4_is_symmetric"] == (True, False)


@pytest.mark.integration
def test_model_builder_runs_in_a_workflow_and_its_output_folder_generates(tmp_path: Path) -> None:
    from olivine.api import load, run_local

    config = {
        "input_model": write_causal_lm(tmp_path / "llm", "qwen2"),
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "search": {"max_length": 10}}},
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))

    result = run_local(load(path))

    model_config = json.loads((result.output_dir / "model_config.json").read_text())
    assert model_config["type"] == "ONNXModel" and model_config["config"]["onnx_file_name"] == "model.onnx"
    # The output folder holds the whole genai model: graph, weights, genai config, tokenizer.
    folder = result.output_dir / model_config["config"]["model_path"]
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    sequence, _ = generate(folder)
    assert len(sequence) == 10


@pytest.mark.integration
@pytest.mark.parametrize("precision", ["fp32", "int4"])
def test_static_quantization_after_model_builder_calibrates_on_text(tmp_path: Path, precision: str) -> None:
    """Two gaps on the way: the builder's output named no tokenizer for the text data config (OnnxConversion's
    does: hf_model_path), and its GroupQueryAttention cache inputs were missing from the text batches
    (they get an empty cache of length 0, as in Olive, with the head size from the genai config)."""
    from olivine.api import load, run_local

    config = {
        "input_model": write_causal_lm(tmp_path / "llm", "qwen2"),
        "data_configs": [write_text_calibration(tmp_path)],
        "passes": {
            "builder": {"type": "ModelBuilder", "precision": precision},
            "quant": {"type": "OnnxStaticQuantization", "data_config": "calib"},
        },
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    best = run_local(load(path)).best
    assert best is not None
    graph = onnx.load(str(best.model.onnx_path), load_external_data=False).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "GroupQueryAttention"} <= ops
    assert best.model.attributes["hf_model_path"] == str(tmp_path / "llm")
    if precision == "int4":  # quantizing MatMulNBits' float scales again made every output 0
        produced = {out: node.op_type for node in graph.node for out in node.output}
        nbits = [node for node in graph.node if node.op_type == "MatMulNBits"]
        assert nbits and all(produced.get(node.input[2]) != "DequantizeLinear" for node in nbits)
    import onnxruntime as ort

    session = ort.InferenceSession(str(best.model.onnx_path), providers=["CPUExecutionProvider"])
    feed: dict[str, Any] = {"input_ids": np.array([[5, 9, 14, 3]], np.int64)}
    feed["attention_mask"] = np.ones((1, 4), np.int64)
    for value in session.get_inputs():
        if value.name.startswith("past_key_values"):
            feed[value.name] = np.zeros((1, value.shape[1], 0, 16), np.float32)
    logits = session.run(["logits"], feed)[0]
    assert np.abs(logits).max() > 0


@pytest.mark.integration
def test_model_builder_check_refuses_a_tokenizer_the_generator_cannot_read(
    llama: ModelHandle, tmp_path: Path
) -> None:
    out = build(llama, tmp_path / "out", precision="int4", int4_block_size=32)
    (tmp_path / "out" / "tokenizer.json").write_text('{"model": {"type": "Nonsense"}')
    with pytest.raises(PassRunError, match="could not load the tokenizer"):
        PASSES.get("ModelBuilder")().check_output(out)


@pytest.mark.integration
def test_passes_after_model_builder_keep_the_genai_folder_whole(tmp_path: Path) -> None:
    """ModelBuilder -> GraphSurgeries -> AddOliveMetadata: each pass's cached folder and the output folder
    hold graph, weights, genai config and tokenizer, recorded in the cache's digests, and generate."""
    from olivine.api import load, run_local
    from olivine.digests import read_digests

    config = {
        "input_model": write_causal_lm(tmp_path / "llm", "llama"),
        "passes": {
            "builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 32},
            "surgery": {"type": "GraphSurgeries", "surgeries": [{"surgeon": "ReciprocalMulToDiv"}]},
            "meta": {"type": "AddOliveMetadata", "graph_name": "tiny-llama"},
        },
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    result = run_local(load(path))

    genai = {"model.onnx", "genai_config.json", "tokenizer.json", "tokenizer_config.json", "config.json"}
    run_dirs = [p for p in (tmp_path / "cache").rglob("run.json")]
    assert len(run_dirs) == 3
    for run_json in run_dirs:
        files = {p.name for p in (run_json.parent / "model").iterdir()}
        assert genai <= files, run_json
        recorded = {Path(k).name for k in read_digests(run_json.parent)}
        assert genai <= recorded
    model_config = json.loads((result.output_dir / "model_config.json").read_text())
    folder = result.output_dir / model_config["config"]["model_path"]
    assert genai <= {p.name for p in folder.iterdir()}
    assert onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.name == "tiny-llama"
    sequence, _ = generate(folder, max_length=12)
    assert len(sequence) == 12 and sequence[: len(PROMPT)] == PROMPT


def _lora_adapter(base: Path, folder: Path) -> None:
    """A LoRA adapter on q_proj / v_proj with random (non-zero) A and B, saved with peft."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), config).save_pretrained(str(folder))


@pytest.mark.integration
def test_model_builder_builds_an_hf_models_lora_adapter(tmp_path: Path) -> None:
    """HfModel adapter_path (Olive's way): the builder adds LoRA MatMuls; onnxruntime-genai's logits equal
    the adapted PyTorch model's (Olivine's own loader merges the adapter), not the base model's."""
    import torch

    from olivine.model.loaders import load_torch_module

    base = write_causal_lm(tmp_path / "llm", "llama")
    _lora_adapter(Path(base["model_path"]), tmp_path / "adapter")
    adapted = handle({**base, "adapter_path": str(tmp_path / "adapter")})
    out = build(adapted, tmp_path / "out", precision="fp32")

    graph = onnx.load(str(out.onnx_path), load_external_data=False).graph
    lora = [n.name for n in graph.node if "/lora_" in n.name]
    assert len(lora) == 2 * 2 * 2  # 2 layers x (q_proj, v_proj) x (A, B)
    _, logits = generate(tmp_path / "out", max_length=len(PROMPT) + 1)
    with torch.inference_mode():
        want = load_torch_module(adapted)(torch.tensor([PROMPT])).logits[0, -1].numpy()
        plain = load_torch_module(handle(base))(torch.tensor([PROMPT])).logits[0, -1].numpy()
    np.testing.assert_allclose(logits, want, atol=2e-3)
    assert np.abs(want - plain).max() > 1e-2  # the adapter changes the model


@pytest.mark.integration
def test_an_hf_model_with_adapter_path_is_accepted_and_part_of_its_identity(tmp_path: Path) -> None:
    from olivine.api import load

    base = write_causal_lm(tmp_path / "llm", "llama")
    _lora_adapter(Path(base["model_path"]), tmp_path / "adapter")
    config = {
        "input_model": {**base, "adapter_path": str(tmp_path / "adapter")},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    workflow = load(path)
    assert workflow.config.input_model.adapter_path == str((tmp_path / "adapter").resolve())
    # the adapter is part of the input model's identity: editing it is a new model (no stale cache hit)
    from olivine.engine.identity import input_model_id

    before = input_model_id(handle(config["input_model"]))
    _lora_adapter(Path(base["model_path"]), tmp_path / "adapter")  # new random LoRA weights
    assert input_model_id(handle(config["input_model"])) != before


def _with_architectures(source: ModelHandle, folder: Path, architectures: Any) -> ModelHandle:
    """A copy of ``source``'s folder whose config.json says ``architectures`` (absent when None)."""
    import shutil

    shutil.copytree(str(source.model_path), folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("architectures", None)
    if architectures is not None:
        config["architectures"] = architectures
    (folder / "config.json").write_text(json.dumps(config))
    return handle({"type": "HfModel", "model_path": str(folder), "task": "text-generation"})


@pytest.mark.integration
@pytest.mark.parametrize(
    ("architectures", "precision", "message"),
    [
        (
            None,
            "int4",
            r"has no 'architectures' list: the model builder picks what it builds by architectures",
        ),
        (
            ["GPT2LMHeadModel"],
            "int4",
            r"architectures\[0\] 'GPT2LMHeadModel' is not one .* builds: .*LlamaForCausalLM",
        ),
        (["LlamaForCausalLm"], "fp32", r"\(did you mean 'LlamaForCausalLM'\?\)"),
        # Builds the installed builder is known to get wrong (onnxruntime-genai 0.15):
        (["OlmoForCausalLM"], "fp32", r"'OlmoForCausalLM' is refused: .* as an RMSNorm"),
        (["GptOssForCausalLM"], "int8", r"'GptOssForCausalLM' at precision int8 is refused: .*signed"),
    ],
)
def test_model_builder_refuses_what_its_builder_would_not_build_right_before_building(
    llama: ModelHandle, tmp_path: Path, architectures: Any, precision: str, message: str
) -> None:
    from olivine.passes.model_builder_support import builder_version

    if "refused" in message and not builder_version().startswith("0.15."):
        pytest.skip("the known-wrong builds are those of onnxruntime-genai 0.15")
    model = _with_architectures(llama, tmp_path / "model", architectures)
    with pytest.raises(PassRunError, match=message):
        build(model, tmp_path / "out", precision=precision)
    assert not list((tmp_path / "out").iterdir())  # refused before the builder wrote anything


def test_model_builder_known_wrong_builds_are_per_precision(tmp_path: Path) -> None:
    from olivine.passes.model_builder_support import architecture_problem, builder_version

    if not builder_version().startswith("0.15."):
        pytest.skip("the known-wrong builds are those of onnxruntime-genai 0.15")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GptOssForCausalLM"]}))
    assert architecture_problem(tmp_path, "int4") is None and architecture_problem(tmp_path, "fp32") is None
    assert "int8" in (architecture_problem(tmp_path, "int8") or "")
    assert "cannot be read" in (architecture_problem(tmp_path / "missing", "int4") or "")
