"""The tiny GGUF writer, read back without a server.

What Ollama does with these files is checked by the tests against the real server; these pin the
file contents that behaviour rests on: the keys and tensor shapes Ollama's Go code reads, with the
exact GGUF types it casts to, and the designed logits of the random gemma4 model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from realollama import tiny_gguf
from realollama.tiny_gguf import (
    GEMMA4_ANSWER,
    GEMMA4_THOUGHT,
    write_gemma3_vision_graft,
    write_gemma4_vision,
)

T = gguf.GGUFValueType


def _fields(reader: gguf.GGUFReader) -> dict[str, tuple[list[Any], Any]]:
    return {k: (f.types, f.contents()) for k, f in reader.fields.items()}


def _shapes(reader: gguf.GGUFReader) -> dict[str, list[int]]:
    """Tensor shapes in ggml order (fastest dimension first), as Ollama sees them."""
    return {t.name: [int(n) for n in t.shape] for t in reader.tensors}


@pytest.fixture(scope="module")
def gemma4_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gemma4_vision(tmp_path_factory.mktemp("g4") / "m.gguf")


@pytest.fixture(scope="module")
def gemma4(gemma4_path: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(gemma4_path)


def test_gemma4_is_one_small_file_with_text_vision_and_projector(
    gemma4_path: Path, gemma4: gguf.GGUFReader
) -> None:
    assert gemma4_path.stat().st_size < 1_000_000
    shapes = _shapes(gemma4)
    assert shapes["token_embd.weight"][0] == 64
    assert shapes["v.patch_embd.weight"] == [4, 4, 3, 32]
    assert shapes["v.position_embd.weight"] == [32, 1024, 2]
    assert shapes["mm.input_projection.weight"] == [32, 64]
    assert {f"v.blk.{i}.attn_out.weight" for i in range(2)} <= shapes.keys()
    assert {f"blk.{i}.post_ffw_norm.weight" for i in range(2)} <= shapes.keys()


def test_gemma4_keys_have_the_types_ollama_casts_to(gemma4: gguf.GGUFReader) -> None:
    fields = _fields(gemma4)
    assert fields["general.architecture"][1] == "gemma4"
    # fs/ggml/ggml.go keyValue type-asserts: a key of another type reads as its default.
    assert fields["gemma4.vision.block_count"] == ([T.UINT32], 2)
    assert fields["gemma4.vision.patch_size"] == ([T.UINT32], 4)
    assert fields["gemma4.attention.layer_norm_rms_epsilon"][0] == [T.FLOAT32]
    assert fields["gemma4.attention.sliding_window_pattern"] == ([T.ARRAY, T.BOOL], [True, False])
    assert fields["tokenizer.ggml.token_type"][0] == [T.ARRAY, T.INT32]
    tokens = fields["tokenizer.ggml.tokens"][1]
    assert fields["tokenizer.ggml.eot_token_id"] == ([T.UINT32], tokens.index("<turn|>"))
    assert {"<|image>", "<image|>", "<|channel>", "<channel|>", "<|turn>"} <= set(tokens)
    assert {f"<0x{b:02X}>" for b in range(256)} <= set(tokens)


def test_gemma4_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    a = write_gemma4_vision(tmp_path / "a.gguf", seed=3).read_bytes()
    b = write_gemma4_vision(tmp_path / "b.gguf", seed=3).read_bytes()
    c = write_gemma4_vision(tmp_path / "c.gguf", seed=4).read_bytes()
    assert a == b
    assert a != c
    assert len(a) == len(c)


class _LastPosition:
    """The logits at the last position, as the text model computes them from the last token.

    The layers only add to the residual stream through post-attention and post-FFN norms, which
    are zero on the designed dimensions, so those dimensions at the last position are the scaled
    embedding of the last token; the free dimensions only rescale every logit through the final
    RMSNorm, so they cannot change any ranking and are left out here.
    """

    def __init__(self, reader: gguf.GGUFReader) -> None:
        tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
        self.tokens: list[str] = reader.fields["tokenizer.ggml.tokens"].contents()
        self.embedding = tensors["token_embd.weight"]
        self.output = tensors["output.weight"]
        self.norm = tensors["output_norm.weight"]
        self.post_norms = [
            v
            for k, v in tensors.items()
            if k.endswith(("post_attention_norm.weight", "post_ffw_norm.weight"))
        ]

    def ranking(self, token: str) -> list[str]:
        x = self.embedding[self.tokens.index(token)] * np.sqrt(self.embedding.shape[1])
        h = x / np.sqrt(np.mean(x * x) + 1e-6) * self.norm
        logits = self.output @ h
        return [self.tokens[i] for i in np.argsort(-logits, kind="stable")]

    def greedy(self, start: str, steps: int) -> list[str]:
        out = [start]
        for _ in range(steps):
            out.append(self.ranking(out[-1])[0])
            if out[-1] == "<turn|>":
                break
        return out[1:]


def test_gemma4_layers_cannot_touch_the_designed_dimensions(gemma4: gguf.GGUFReader) -> None:
    model = _LastPosition(gemma4)
    used = np.flatnonzero(np.abs(model.embedding).sum(axis=0))
    assert len(model.post_norms) == 4
    for weight in model.post_norms:
        assert not weight[used].any()
        assert weight.any()  # the layers do write into the free dimensions


def test_gemma4_after_the_prompt_thinks_answers_and_ends_its_turn(gemma4: gguf.GGUFReader) -> None:
    # Every gemma4 prompt ends "<|turn>model\n" (model/renderers/gemma4.go).
    reply = "".join(_LastPosition(gemma4).greedy("\n", 20)).replace("\u2581", " ")
    assert reply == f"<|channel>thought\n{GEMMA4_THOUGHT}<channel|>{GEMMA4_ANSWER}<turn|>"


def test_gemma4_prefers_closing_json_wherever_the_grammar_allows(gemma4: gguf.GGUFReader) -> None:
    model = _LastPosition(gemma4)
    # Inside a string: the answer, then the closing quote right after it.
    assert model.ranking('"')[:2] == ["I", '"']
    assert model.ranking("\u2581noise.")[:2] == ["<turn|>", '"']
    # After a value: close the object or array before adding a comma; empty containers first.
    top = model.ranking('"')
    assert top.index("}") < top.index("]") < top.index(",") < top.index("0.5") < top.index("0")
    assert model.ranking("[")[0] == "]"
    assert model.ranking("{")[0] == "}"
    # Whitespace never wins over ending the turn once the JSON is complete.
    assert top.index("<turn|>") < min(top.index(w) for w in ("\u2581", "\n", "\t"))


def _fake_gemma3_base(path: Path) -> Path:
    """A tiny gemma3 text GGUF with a quantised tensor, standing in for gemma-3-270m."""
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_uint32("gemma3.embedding_length", 32)
    w.add_uint32("gemma3.block_count", 1)
    w.add_token_list(["<pad>", "<eos>", "<bos>", "a", "\u2581noise"])
    w.add_token_types([3, 3, 3, 1, 1])
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    rng = np.random.default_rng(0)
    q8 = gguf.quants.quantize(
        rng.standard_normal((5, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0
    )
    w.add_tensor("token_embd.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gemma3_graft_keeps_the_base_and_adds_the_vision_ollama_reads(tmp_path: Path) -> None:
    base = gguf.GGUFReader(_fake_gemma3_base(tmp_path / "base.gguf"))
    graft = gguf.GGUFReader(write_gemma3_vision_graft(tmp_path / "base.gguf", tmp_path / "g.gguf"))
    fields, base_fields = _fields(graft), _fields(base)
    for key in base_fields.keys() - {"GGUF.tensor_count", "GGUF.kv_count"}:
        assert fields[key] == base_fields[key], key
    base_tensors = {t.name: t for t in base.tensors}
    for t in graft.tensors:
        if t.name in base_tensors:
            assert t.tensor_type == base_tensors[t.name].tensor_type
            assert t.data.tobytes() == base_tensors[t.name].data.tobytes()
    # gemma3/model.go reads this exact key (the converter's "mm.tokens_per_image" is ignored).
    assert fields["gemma3.mm_tokens_per_image"] == ([T.UINT32], 16)
    assert fields["gemma3.vision.block_count"] == ([T.UINT32], 2)
    assert fields["gemma3.vision.attention.layer_norm_epsilon"][0] == [T.FLOAT32]
    shapes = _shapes(graft)
    # The projector is transposed before use: [text_dim, vision_dim] in ggml order.
    assert shapes["mm.mm_input_projection.weight"] == [32, 64]
    assert shapes["v.patch_embedding.weight"] == [8, 8, 3, 64]
    assert shapes["v.position_embedding.weight"] == [64, (64 // 8) ** 2]
    vision = tiny_gguf._gemma3_vision_tensors(np.random.default_rng(0), np.ones(32, np.float32))
    assert shapes.keys() == base_tensors.keys() | vision.keys()


def _image_tokens(graft: gguf.GGUFReader, pooled: np.ndarray) -> np.ndarray:
    """What gemma3/model.go makes of pooled tower outputs: soft-emb RMSNorm, then projection."""
    t = {x.name: np.asarray(x.data, dtype=np.float32) for x in graft.tensors}
    x = pooled / np.sqrt(np.mean(pooled * pooled, axis=-1, keepdims=True) + 1e-6)
    x = x * t["mm.mm_soft_emb_norm.weight"]
    tokens: np.ndarray = x @ t["mm.mm_input_projection.weight"]
    return tokens


def test_gemma3_graft_image_tokens_read_as_the_word_noise_plus_noise(tmp_path: Path) -> None:
    base_path = _fake_gemma3_base(tmp_path / "base.gguf")
    base = gguf.GGUFReader(base_path)
    graft = gguf.GGUFReader(write_gemma3_vision_graft(base_path, tmp_path / "g.gguf", seed=1))
    embd = next(t for t in base.tensors if t.name == "token_embd.weight")
    noise_row = gguf.quants.dequantize(np.asarray(embd.data[4]), embd.tensor_type) * np.sqrt(32)
    t = {x.name: np.asarray(x.data, dtype=np.float32) for x in graft.tensors}
    # The tower ends in LayerNorm: normalised features (rms 1) times a small weight plus a bias.
    rng = np.random.default_rng(5)
    features = rng.standard_normal((16, 64)).astype(np.float32)
    features /= features.std(axis=-1, keepdims=True)
    pooled = features * t["v.post_layernorm.weight"] + t["v.post_layernorm.bias"]
    tokens = _image_tokens(graft, pooled)
    cosine = tokens @ noise_row / (np.linalg.norm(tokens, axis=-1) * np.linalg.norm(noise_row))
    assert (cosine > 0.8).all()  # each image token is close to the embedding of "▁noise" ...
    assert np.ptp(tokens, axis=0).max() > 0.1  # ... but the image still moves it
    assert np.allclose(_image_tokens(graft, t["v.post_layernorm.bias"]), noise_row, atol=1e-3)


def test_gemma3_graft_refuses_a_base_of_another_architecture(tmp_path: Path) -> None:
    other = tmp_path / "g4.gguf"
    write_gemma4_vision(other)
    with pytest.raises(ValueError, match="not gemma3"):
        write_gemma3_vision_graft(other, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()
