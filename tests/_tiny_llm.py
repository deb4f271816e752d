"""A tiny Llama model built locally for the vLLM integration tests.

No weights can be downloaded here, so the tests build their own model:

- a byte-level BPE tokenizer trained with ``tokenizers`` on the text below;
- a ChatML chat template with Hermes-style tool support;
- a ``LlamaConfig`` of a few hundred thousand parameters (head_dim 32);
- deterministic weights: every token embeds to the same unit vector and the
  attention and MLP outputs are zero, so the final hidden state is constant
  and the output layer acts as a per-token bias. The bias favours the
  end-of-turn token, then a double quote, then the digit in ``FAVOURED_DIGIT``;
  whitespace and control tokens are suppressed.

With greedy decoding the model therefore answers free text with an empty
reply, fills a JSON string of ``minLength`` 1 with ``FAVOURED_DIGIT`` and
closes it at once, and picks enum values deterministically. The content is
meaningless; the model exists to exercise the wire.

Run with the python of ``.vllm-venv`` (which has torch, transformers and
tokenizers): ``python tests/_tiny_llm.py OUT_DIR``. From the main environment
call :func:`build_tiny_model`, which runs this file in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

FAVOURED_DIGIT = "7"
SERVED_MODEL_NAME = "triallens-tiny-llama"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|im_start|>",
    END_OF_TURN,
    "<|pad|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]

CHAT_TEMPLATE = """\
{%- set loop_messages = messages -%}
{%- if messages and messages[0].role == 'system' -%}
  {%- set system_text = messages[0].content -%}
  {%- set loop_messages = messages[1:] -%}
{%- else -%}
  {%- set system_text = '' -%}
{%- endif -%}
{%- if tools or system_text -%}
<|im_start|>system
{{ system_text }}
{%- if tools %}
Functions you may call, as JSON schemas inside <tools></tools>:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>
Answer a call as <tool_call>{"name": NAME, "arguments": ARGS}</tool_call>.
{%- endif %}<|im_end|>
{% endif -%}
{%- for message in loop_messages -%}
{%- if message.role == 'user' -%}
<|im_start|>user
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' -%}
<|im_start|>assistant
{%- if message.content %}
{{ message.content }}
{%- endif %}
{%- if message.tool_calls %}
{%- for call in message.tool_calls %}
<tool_call>
{"name": {{ call.function.name | tojson }}, "arguments": \
{{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}
{%- endif %}<|im_end|>
{% elif message.role == 'tool' -%}
<|im_start|>tool
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""

CORPUS = """\
CT chest abdomen pelvis with contrast at week 8. Target lesion L1 in the liver
measures 23.5 mm, lesion L2 in a lung 14.0 mm, node N1 short axis 12.0 mm.
Sum of diameters 49.5 mm, baseline 41.0 mm, nadir 38.2 mm, change +20.7 %.
Target response PD, overall response PD, priority HIGH. New lesion L3.
Cardiac MR short axis cine: LVEF 47 %, previous 59 %, a drop of 12 points.
Head CT without contrast: haemorrhage volume 18.4 ml, previous 12.1 ml.
Slice thickness 5.0 mm exceeds the charter maximum of 2.5 mm.
The visit is outside its window by 9 days. Expedited review is suggested.
{"narrative": "Target lesions were measured on the follow-up CT."}
{"trial":"TL-DEMO-001","site":"S01","subject":"SUBJ-0001","time_point":"TP1",
"quoted_time_point_description":"Week 8","study_date":"2024-03-05","modality":"CT",
"quoted_study_description":"CT CHEST","task":"recist","outcome":"measured",
"outcome_reason":"","priority":"ROUTINE","priority_reasons":["overall response SD"],
"deviations":["slice thickness"],"qc_flags":[{"code":"SLICE_GAP","reason":"gap"}],
"findings":[{"name":"lvef","value":55.0,"unit":"%","confidence":0.9}],
"assessment":{"lesions":[{"lesion_id":"L1","kind":"lesion","organ":"liver",
"longest_diameter_mm":23.5,"short_axis_mm":15.2,"volume_ml":4.1},{"lesion_id":"N1",
"kind":"node","organ":"lymph node","longest_diameter_mm":18.0,"short_axis_mm":12.0}],
"sum_of_diameters_mm":35.5,"baseline_sum_mm":29.0,"nadir_sum_mm":28.0,
"percent_change_from_baseline":22.4,"target_response":"PD","overall_response":"PD",
"new_lesions":["L3"]}}
{"name": "get_lesion", "arguments": {"lesion_id": "L1"}}
{"type": "object", "properties": {"narrative": {"type": "string"}}}
<tool_call>{"name": "lookup", "arguments": {"key": "value"}}</tool_call>
0 1 2 3 4 5 6 7 8 9 10 100 2024-03-01 2025-11-30 12.5 % 3.14
"""


PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


def _local_text() -> str:
    """The training text: the corpus above and the repository's prompts."""
    texts = [CORPUS] + [p.read_text() for p in sorted(PROMPTS_DIR.glob("*.yaml"))]
    return "\n".join(texts)


def _corpus_lines() -> list[str]:
    lines = [line for line in _local_text().splitlines() if line.strip()]
    return lines * 20


def recipe_hash() -> str:
    """A hash of everything that decides the model (for caching)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(_local_text().encode())
    return digest.hexdigest()[:16]


def build_tiny_model(out_dir: Path, python: Path, timeout_s: float = 300) -> Path:
    """Build the model into ``out_dir`` with the given python; reuse a build.

    Parameters
    ----------
    out_dir:
        Folder to write the Hugging Face model folder into.
    python:
        A python that has torch, transformers and tokenizers (``.vllm-venv``).
    timeout_s:
        Bound on the build.

    Returns
    -------
    Path
        The model folder (``out_dir``), ready for ``--model``.
    """
    stamp = out_dir / ".recipe"
    if stamp.is_file() and stamp.read_text() == recipe_hash():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(python), str(Path(__file__).resolve()), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin"},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"building the tiny model failed ({proc.returncode}):\n"
            + proc.stderr[-3000:]
        )
    stamp.write_text(recipe_hash())
    return out_dir


def _token_bias(tokenizer: object, vocab_size: int) -> list[float]:
    """Per-token logit bias: end-of-turn, quote, digit; whitespace suppressed."""
    convert = tokenizer.convert_ids_to_tokens  # type: ignore[attr-defined]
    decode = tokenizer.decode  # type: ignore[attr-defined]
    bias: list[float] = []
    for token_id in range(vocab_size):
        text = decode([token_id])
        if convert(token_id) in SPECIAL_TOKENS:
            value = -20.0
        elif not text or any(ch.isspace() or not ch.isprintable() for ch in text):
            value = -10.0
        else:
            value = -((token_id * 37) % 101) / 101.0
        bias.append(value)
    ids = tokenizer.convert_tokens_to_ids  # type: ignore[attr-defined]
    bias[ids(END_OF_TURN)] = 10.0
    bias[tokenizer.encode('"', add_special_tokens=False)[0]] = 8.0  # type: ignore[attr-defined]
    bias[tokenizer.encode(FAVOURED_DIGIT, add_special_tokens=False)[0]] = 6.0  # type: ignore[attr-defined]
    return bias


def _build(out_dir: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)

    # Tokenizer: byte-level BPE trained on the corpus above.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus_lines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token=END_OF_TURN,
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    vocab_size = len(tokenizer)

    # Model: 2 layers, hidden 96, three heads of 32.
    hidden = 96
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=3,
        num_key_value_heads=3,
        head_dim=32,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)

    # Weights: a constant hidden state so the output layer is a token bias.
    with torch.no_grad():
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        # After the final RMSNorm the hidden state is sqrt(hidden) * e0.
        scale = float(hidden) ** 0.5
        bias = torch.tensor(_token_bias(tokenizer, vocab_size)) / scale
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = bias

    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.do_sample = False
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    parameters = sum(p.numel() for p in model.parameters())
    (out_dir / "tiny-model.json").write_text(
        json.dumps({"parameters": parameters, "vocab_size": vocab_size})
    )


if __name__ == "__main__":
    _build(Path(sys.argv[1]))
