"""Writes a llama-architecture GGUF with random F16 weights, for runner memory tests.

usage: random_gguf.py LLAMA_CPP_DIR OUT.gguf N_EMBD N_LAYER

The tokenizer is borrowed from llama.cpp's vocab-only test file, so llama-server loads and
generates (nonsense) text. `2048 24` gives about 2.55 GB and 24 layers; `128 4` about 10 MB.
Needs numpy and the gguf-py package inside the llama.cpp sources.
"""
import sys
import types

import numpy as np

src, out, n_embd, n_layer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, f"{src}/gguf-py")
try:
    import yaml  # noqa: F401  gguf-py imports it only for metadata we never write
except ImportError:
    sys.modules["yaml"] = types.ModuleType("yaml")
import gguf  # noqa: E402

vocab = gguf.GGUFReader(f"{src}/models/ggml-vocab-llama-spm.gguf")


def field(name):
    f = vocab.fields[name]
    if f.types[-1] == gguf.GGUFValueType.STRING:
        return [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]
    return [f.parts[i].tolist()[0] for i in f.data]


tokens = field("tokenizer.ggml.tokens")
n_vocab = len(tokens)
n_head = max(8, n_embd // 128)
n_head_kv = n_head // 2
head_dim = n_embd // n_head
n_ff = n_embd * 3

w = gguf.GGUFWriter(out, "llama")
w.add_name("random-llama")
w.add_context_length(8192)
w.add_embedding_length(n_embd)
w.add_block_count(n_layer)
w.add_feed_forward_length(n_ff)
w.add_head_count(n_head)
w.add_head_count_kv(n_head_kv)
w.add_rope_dimension_count(head_dim)
w.add_layer_norm_rms_eps(1e-5)
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores(field("tokenizer.ggml.scores"))
w.add_token_types(field("tokenizer.ggml.token_type"))
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)

rng = np.random.default_rng(0)


def tensor(name, *shape, f16=True):
    a = rng.standard_normal(shape, dtype=np.float32) * 0.02
    w.add_tensor(name, a.astype(np.float16) if f16 else a)


# The output projection is tied to token_embd (no output.weight), as in small llamas.
tensor("token_embd.weight", n_vocab, n_embd)
tensor("output_norm.weight", n_embd, f16=False)
for i in range(n_layer):
    p = f"blk.{i}."
    tensor(p + "attn_norm.weight", n_embd, f16=False)
    tensor(p + "ffn_norm.weight", n_embd, f16=False)
    tensor(p + "attn_q.weight", n_embd, n_embd)
    tensor(p + "attn_k.weight", n_head_kv * head_dim, n_embd)
    tensor(p + "attn_v.weight", n_head_kv * head_dim, n_embd)
    tensor(p + "attn_output.weight", n_embd, n_embd)
    tensor(p + "ffn_gate.weight", n_ff, n_embd)
    tensor(p + "ffn_up.weight", n_ff, n_embd)
    tensor(p + "ffn_down.weight", n_embd, n_ff)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
# One line the proof script reads back: the scenario needs these to size the model like Ollama.
print(f"gguf {out} vocab={n_vocab} embd={n_embd} layers={n_layer} heads={n_head} "
      f"kv_heads={n_head_kv} head_dim={head_dim}")
