#!/usr/bin/python3
"""bench_torch.py — the PyTorch peer of scripts/bench_train.lua (see docs/performance_peer.md).

Times training steps (forward + loss + backward + AdamW step + zero_grad) of a small self-contained model
written in plain PyTorch, for one shape and one method per process, and prints ONE JSON line in the schema
of bench_train.lua ("shape" first) plus "peer":"pytorch" and "torch":<version>:

  /usr/bin/python3 scripts/bench_torch.py --shape gpt2-4m --batch 32 --seq 32 --method sift

Shapes (--shape), with random weights (seed 1: N(0, 0.02) matrices and embeddings, zero biases, unit norm
weights) and no dropout:
  gpt2-4m, gpt2-124M  the math of HF GPT2LMHeadModel: pre-LN blocks, learned positions, fused qkv in a Conv1D,
                      tanh GELU, tied LM head. Token ids uniform in [0, vocab) from a torch.Generator seeded
                      1234; --weights DIR loads a GPT-2 directory instead ("shape" is then DIR's name).
  roberta-base        the math of HF RobertaForSequenceClassification, 2 labels: vocab 50265, 12 post-LN
                      layers 768 wide, 12 heads, intermediate 3072 with exact GELU, LayerNorm eps 1e-12, 514
                      positions counted from padding_idx 1 over the real tokens (padding tokens get
                      position 1), one token type; bidirectional attention that masks padding keys; the
                      head takes the first token (dense, tanh, out_proj); mean cross-entropy over the labels.
  llama-124M          the math of HF LlamaForCausalLM: vocab 32000, 12 layers 768 wide, 12 query and 4
                      key/value heads of 64 (grouped-query attention), RoPE theta 10000 (rotate_half form),
                      SwiGLU MLP 2048 (down(silu(gate(x)) * up(x))), RMSNorm eps 1e-5, no biases, untied
                      LM head, causal attention.
The causal LMs' loss is HF's with labels = inputs: predict token t+1 from position t, mean cross-entropy.
roberta-base and llama-124M take bench_train.lua's batch: xorshift64 (state 88172645463325252; per call
s ^= s << 13, s ^= s >> 7 (logical), s ^= s << 17 modulo 2^64, returning s as a signed 64-bit integer, as
Lua does, reduced with floored %). llama-124M: ids = rnd() % 32000, row by row. roberta-base: per row a
length T - rnd() % (T // 2), then that many ids 3 + rnd() % 50000 (the rest is padding: id 1, mask 0),
then a label rnd() % 2.

Methods (all AdamW lr 1e-4, PyTorch defaults otherwise: betas (0.9, 0.999), eps 1e-8, weight decay 0.01).
The target matrices are every weight matrix inside the blocks: GPT-2's attn.c_attn, attn.c_proj, mlp.c_fc,
mlp.c_proj; RoBERTa's query, key, value, attention output, intermediate and output (72); Llama's q, k, v,
o, gate, up and down projections (84). RoBERTa's classification head (dense and out_proj, weights and
biases) trains densely beside sift and lora, as in sift's engine:
  full  every parameter trains.
  sift  SIFT as the published PyTorch reference does it: every parameter is frozen except the target
        matrices, which keep requires_grad so autograd computes their dense gradient; a hook per matrix
        gathers the top-1 % entries (chosen by |grad| on a first calibration batch, k = int(0.01 * numel) + 1)
        into a k-vector increment's .grad and the dense gradient is thrown away (p.grad = None); AdamW
        trains the increments and after the step W.flatten()[idx] = W0 + delta is written back under no_grad.
  lora  LoRA r=8 alpha=16 on the target matrices (A (r, in) kaiming-uniform, B (out, r) zeros), base frozen.
--check prints the first row of the batch and the loss before training to stderr.

With --generate (GPT-2 shapes only) it times greedy generation with a key/value cache instead (the way
Hugging Face's GPT-2 concatenates past keys and values): a 4-token prompt and 200 new tokens, then a
250-token prompt and one new token (median of 11), printing
{"method":"generate","gpt2_4m_tokens_per_s":…,"gpt2_4m_prefill_250_tokens_per_s":…}.

Use Debian's /usr/bin/python3 (it has PyTorch 1.13). The thread count and OMP_WAIT_POLICY=PASSIVE are set
in the environment before torch is imported (without PASSIVE, 2 threads on 2 cores contend and PyTorch
runs ~2x slower), and GOMP_SPINCOUNT=10000 unless the caller set it: the short spin before a worker
sleeps that sift's programs use too (core/threads.h), so both wait the same way.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

SHAPES = {  # name: (architecture, dims)
    "gpt2-4m": ("gpt2", dict(vocab=4096, n_embd=256, n_layer=4, n_head=4, ctx=256)),
    "gpt2-124M": ("gpt2", dict(vocab=50257, n_embd=768, n_layer=12, n_head=12, ctx=1024)),
    "roberta-base": ("roberta", dict(vocab=50265, n_embd=768, n_layer=12, n_head=12, n_inner=3072, ctx=514)),
    "llama-124M": ("llama", dict(vocab=32000, n_embd=768, n_layer=12, n_head=12, n_kv_head=4, n_inner=2048,
                                 ctx=1024)),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="gpt2-4m", help=" | ".join(SHAPES) + " (explicit dims below override)")
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--n-embd", type=int)
    ap.add_argument("--n-layer", type=int)
    ap.add_argument("--n-head", type=int)
    ap.add_argument("--ctx", type=int)
    ap.add_argument("--weights", help="GPT-2 model dir with config.json + (sharded) safetensors (optional)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--method", default="sift", choices=("full", "sift", "lora"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0.01, help="SIFT fraction of each matrix")
    ap.add_argument("--r", type=int, default=8, help="LoRA rank")
    ap.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--foreach", action="store_true", help="AdamW(foreach=True) (1.13 default: off on CPU)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--generate", action="store_true", help="time KV-cache generation instead of training")
    ap.add_argument("--check", action="store_true", help="print the batch's first row and the initial loss")
    a = ap.parse_args()
    if a.weights:
        with open(os.path.join(a.weights, "config.json")) as f:
            c = json.load(f)
        arch, name = "gpt2", os.path.basename(os.path.normpath(a.weights))
        cfg = dict(vocab=c["vocab_size"], n_embd=c["n_embd"], n_layer=c["n_layer"], n_head=c["n_head"],
                   ctx=c["n_positions"])
    elif a.shape in SHAPES:
        arch, cfg = SHAPES[a.shape]
        cfg, name = dict(cfg), a.shape
    else:
        ap.error("unknown --shape %s (%s, or give --weights)" % (a.shape, " | ".join(SHAPES)))
    for k in ("vocab", "n_embd", "n_layer", "n_head", "ctx"):
        v = getattr(a, k)
        if v is not None:
            cfg[k] = v
    if a.generate and arch != "gpt2":
        ap.error("--generate needs a GPT-2 shape")
    limit = cfg["ctx"] - 2 if arch == "roberta" else cfg["ctx"]  # RoBERTa's positions start at 2
    if a.seq > limit:
        ap.error("--seq %d exceeds the context %d" % (a.seq, limit))
    return a, arch, name, cfg


args, ARCH, SHAPE, CFG = parse_args()
# must happen before torch is imported
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
# the bounded spin before a worker sleeps that sift's programs set (SF_GOMP_SPINCOUNT, core/threads.h):
# the two measured under the same OpenMP waiting (PyTorch 1.13 runs on the same libgomp)
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)


# ---------------------------------------------------------------- building blocks
class Matrix(nn.Module):
    """A weight matrix, N(0, 0.02), with an optional zero bias and an optional LoRA pair (attach_lora)."""

    def __init__(self, n_in, n_out, weight_shape, bias):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(weight_shape).normal_(0.0, 0.02))
        if bias:
            self.bias = nn.Parameter(torch.zeros(n_out))
        else:
            self.register_parameter("bias", None)
        self.lora = None  # (A, B, scale) when LoRA is attached

    def attach_lora(self, r, alpha):
        """A (r, in) kaiming-uniform, B (out, r) zeros, scale alpha / r; returns [A, B]."""
        A = nn.Parameter(torch.empty(r, self.n_in))
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        B = nn.Parameter(torch.zeros(self.n_out, r))
        self.lora = (A, B, alpha / r)
        return [A, B]

    def lora_term(self, x):
        A, B, scale = self.lora
        return (x @ A.t()) @ B.t() * scale


class Conv1D(Matrix):
    """HF GPT-2's Conv1D: weight (in, out), y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, (n_in, n_out), bias=True)

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.addmm(self.bias, x2, self.weight)
        if self.lora is not None:
            y = y + self.lora_term(x2)
        return y.view(shape)


class Linear(Matrix):
    """nn.Linear's math: weight (out, in), y = x @ W^T (+ b)."""

    def __init__(self, n_in, n_out, bias=True):
        super().__init__(n_in, n_out, (n_out, n_in), bias)

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.lora is not None:
            y = y + self.lora_term(x)
        return y


def embedding(n, dim, padding_idx=None):
    """nn.Embedding initialised as HF does: N(0, 0.02), the padding row zero."""
    e = nn.Embedding(n, dim, padding_idx=padding_idx)
    nn.init.normal_(e.weight, 0.0, 0.02)
    if padding_idx is not None:
        with torch.no_grad():
            e.weight[padding_idx].zero_()
    return e


def heads(x, n):
    """(B, T, n * hd) -> (B, n, T, hd)."""
    B, T, C = x.shape
    return x.view(B, T, n, C // n).transpose(1, 2)


def merge_heads(y):
    """(B, n, T, hd) -> (B, T, n * hd)."""
    B, n, T, hd = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, n * hd)


def lm_loss(logits, ids):
    """HF's causal LM loss with labels = inputs (shifted inside): predict token t+1 from position t, mean CE."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def xorshift64():
    """scripts/bench_train.lua's generator: the state as Lua's signed 64-bit integer after each step."""
    s = 88172645463325252
    while True:
        s ^= (s << 13) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 7  # s is kept unsigned here, so this shift is logical as Lua's
        s ^= (s << 17) & 0xFFFFFFFFFFFFFFFF
        yield s - (1 << 64) if s >> 63 else s


class Model(nn.Module):
    """What the methods need of a model: make_batch(c, B, T) gives the keyword arguments of forward, which
    returns the loss; targets() the matrices SIFT and LoRA adapt; dense() the parameters that train densely
    beside them."""

    def dense(self):
        return []


# ---------------------------------------------------------------- GPT-2 (same math as HF GPT2LMHeadModel)
class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c["n_head"]
        self.c_attn = Conv1D(c["n_embd"], 3 * c["n_embd"])
        self.c_proj = Conv1D(c["n_embd"], c["n_embd"])
        n = c["ctx"]
        self.register_buffer("bias", torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n),
                             persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(C // H)
        mask = self.bias[:, :, :T, :T]
        w = torch.where(mask, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w, dim=-1)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(c["n_embd"], 4 * c["n_embd"])
        self.c_proj = Conv1D(4 * c["n_embd"], c["n_embd"])

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # gelu_new


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=1e-5)
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=1e-5)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(Model):
    """Parameter names follow HF's "transformer." tree without the prefix; the LM head is tied to wte."""

    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab"], c["n_embd"])
        self.wpe = nn.Embedding(c["ctx"], c["n_embd"])
        nn.init.normal_(self.wte.weight, 0.0, 0.02)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02)
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=1e-5)

    @staticmethod
    def make_batch(c, B, T):
        gen = torch.Generator().manual_seed(1234)
        return {"input_ids": torch.randint(0, c["vocab"], (B, T), generator=gen, dtype=torch.long)}

    def targets(self):
        return [m for b in self.h for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]

    def forward(self, input_ids):
        T = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(T, dtype=torch.long))
        for b in self.h:
            x = b(x)
        return lm_loss(F.linear(self.ln_f(x), self.wte.weight), input_ids)  # tied head


# ---------------------------------------------------------------- RoBERTa (HF RobertaForSequenceClassification)
ROBERTA_PAD = 1  # padding_idx: the pad token's id, and the position padding tokens get


class RobertaLayer(nn.Module):
    """Post-LN: HF's attention.self.{query,key,value}, attention.output.{dense,LayerNorm}, intermediate.dense,
    output.{dense,LayerNorm}."""

    def __init__(self, c):
        super().__init__()
        E, eps = c["n_embd"], 1e-12
        self.n_head = c["n_head"]
        self.query, self.key, self.value = Linear(E, E), Linear(E, E), Linear(E, E)
        self.attn_out = Linear(E, E)
        self.attn_ln = nn.LayerNorm(E, eps=eps)
        self.intermediate = Linear(E, c["n_inner"])
        self.output = Linear(c["n_inner"], E)
        self.out_ln = nn.LayerNorm(E, eps=eps)

    def forward(self, x, key_bias):
        H = self.n_head
        q, k, v = heads(self.query(x), H), heads(self.key(x), H), heads(self.value(x), H)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) + key_bias
        y = merge_heads(torch.matmul(F.softmax(w, dim=-1), v))
        x = self.attn_ln(self.attn_out(y) + x)
        return self.out_ln(self.output(F.gelu(self.intermediate(x))) + x)


class ClassificationHead(nn.Module):
    """HF RobertaClassificationHead: the first token's state, dense, tanh, out_proj."""

    def __init__(self, c, n_labels):
        super().__init__()
        self.dense = Linear(c["n_embd"], c["n_embd"])
        self.out_proj = Linear(c["n_embd"], n_labels)

    def forward(self, x):
        return self.out_proj(torch.tanh(self.dense(x[:, 0])))


class Roberta(Model):
    def __init__(self, c):
        super().__init__()
        E = c["n_embd"]
        self.word_embeddings = embedding(c["vocab"], E, ROBERTA_PAD)
        self.position_embeddings = embedding(c["ctx"], E, ROBERTA_PAD)
        self.token_type_embeddings = embedding(1, E)
        self.emb_ln = nn.LayerNorm(E, eps=1e-12)
        self.layers = nn.ModuleList(RobertaLayer(c) for _ in range(c["n_layer"]))
        self.classifier = ClassificationHead(c, 2)

    @staticmethod
    def make_batch(c, B, T):
        rnd = xorshift64()
        ids, mask, labels = [], [], []
        for _ in range(B):
            n = T - next(rnd) % (T // 2)
            ids.append([3 + next(rnd) % 50000 for _ in range(n)] + [ROBERTA_PAD] * (T - n))
            mask.append([1] * n + [0] * (T - n))
            labels.append(next(rnd) % 2)
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                "labels": torch.tensor(labels)}

    def targets(self):
        return [m for y in self.layers for m in (y.query, y.key, y.value, y.attn_out, y.intermediate, y.output)]

    def dense(self):
        return list(self.classifier.parameters())

    def forward(self, input_ids, attention_mask, labels):
        positions = torch.cumsum(attention_mask, dim=1) * attention_mask + ROBERTA_PAD
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(torch.zeros_like(input_ids))
        x = self.emb_ln(x + self.position_embeddings(positions))
        # HF's extended attention mask: finfo.min added to the scores of padding keys
        key_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, key_bias)
        return F.cross_entropy(self.classifier(x), labels)


# ---------------------------------------------------------------- Llama (HF LlamaForCausalLM)
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope(T, hd, theta=10000.0):
    """HF's rotary cos and sin tables (T, hd): each frequency twice, as rotate_half pairs i with i + hd/2."""
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    f = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    emb = torch.cat((f, f), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    """HF's repeat_kv: (B, KV, T, hd) -> (B, KV * n_rep, T, hd), each key/value head serving n_rep query heads."""
    B, KV, T, hd = x.shape
    return x[:, :, None].expand(B, KV, n_rep, T, hd).reshape(B, KV * n_rep, T, hd)


class LlamaLayer(nn.Module):
    """HF's input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj."""

    def __init__(self, c):
        super().__init__()
        E, H, KV = c["n_embd"], c["n_head"], c["n_kv_head"]
        hd = E // H
        self.n_head, self.n_kv_head = H, KV
        self.input_layernorm = RMSNorm(E)
        self.q_proj = Linear(E, H * hd, bias=False)
        self.k_proj = Linear(E, KV * hd, bias=False)
        self.v_proj = Linear(E, KV * hd, bias=False)
        self.o_proj = Linear(H * hd, E, bias=False)
        self.post_attention_layernorm = RMSNorm(E)
        self.gate_proj = Linear(E, c["n_inner"], bias=False)
        self.up_proj = Linear(E, c["n_inner"], bias=False)
        self.down_proj = Linear(c["n_inner"], E, bias=False)

    def forward(self, x, cos, sin, causal):
        h = self.input_layernorm(x)
        q = heads(self.q_proj(h), self.n_head)
        k = heads(self.k_proj(h), self.n_kv_head)
        v = heads(self.v_proj(h), self.n_kv_head)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        x = x + self.o_proj(merge_heads(torch.matmul(F.softmax(w, dim=-1), v)))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(Model):
    def __init__(self, c):
        super().__init__()
        self.head_dim = c["n_embd"] // c["n_head"]
        self.embed_tokens = embedding(c["vocab"], c["n_embd"])
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c["n_layer"]))
        self.norm = RMSNorm(c["n_embd"])
        self.lm_head = Linear(c["n_embd"], c["vocab"], bias=False)  # untied

    @staticmethod
    def make_batch(c, B, T):
        rnd = xorshift64()
        return {"input_ids": torch.tensor([[next(rnd) % c["vocab"] for _ in range(T)] for _ in range(B)])}

    def targets(self):
        return [m for y in self.layers
                for m in (y.q_proj, y.k_proj, y.v_proj, y.o_proj, y.gate_proj, y.up_proj, y.down_proj)]

    def forward(self, input_ids):
        T = input_ids.shape[1]
        cos, sin = rope(T, self.head_dim)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, causal)
        return lm_loss(self.lm_head(self.norm(x)), input_ids)


MODELS = {"gpt2": GPT2, "roberta": Roberta, "llama": Llama}


def load_safetensors(model, d):
    """Minimal safetensors reader (the safetensors package is not installed for /usr/bin/python3)."""
    files = [f for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    own = dict(model.named_parameters())
    seen = set()
    for fn in files:
        with open(os.path.join(d, fn), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        for name, info in header.items():
            if name == "__metadata__":
                continue
            key = name[len("transformer."):] if name.startswith("transformer.") else name
            if key not in own:
                continue  # lm_head.weight (tied), attn.bias buffers of old exports
            assert info["dtype"] == "F32", "only F32 weights are supported: %s" % name
            a, b = info["data_offsets"]
            t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).view(info["shape"])
            with torch.no_grad():
                own[key].copy_(t)
            seen.add(key)
    missing = set(own) - seen
    if missing:
        raise SystemExit("bench_torch: %s lacks %s" % (d, ", ".join(sorted(missing))))


# ---------------------------------------------------------------- methods
class Sift:
    """SIFT as the published PyTorch reference implements it (dense grad via autograd, gathered by a hook)."""

    def __init__(self, model, batch, rate):
        self.mats = [m.weight for m in model.targets()]
        for p in self.mats:
            p.requires_grad_(True)
        # calibration: top-k |grad| of the first batch
        model(**batch).backward()
        self.incs, self.idx, self.w0 = [], [], []
        for p in self.mats:
            k = min(int(rate * p.numel()) + 1, p.numel())
            idx = p.grad.abs().flatten().topk(k).indices
            p.grad = None
            self.idx.append(idx)
            self.w0.append(p.detach().reshape(-1)[idx].clone())
            self.incs.append(nn.Parameter(torch.zeros(k)))
        for i, p in enumerate(self.mats):
            p.register_hook(self._hook(i))

    def _hook(self, i):
        inc, idx = self.incs[i], self.idx[i]

        def hook(g):
            g = g.reshape(-1).index_select(0, idx)
            inc.grad = g if inc.grad is None else inc.grad + g
            # the reference drops every dense gradient that has already been accumulated
            for p in self.mats:
                if p.grad is not None:
                    p.grad = None
            return None

        return hook

    def after_backward(self):
        for p in self.mats:  # the last matrix's dense grad is accumulated after its hook ran
            p.grad = None

    @torch.no_grad()
    def after_step(self):
        for p, idx, w0, inc in zip(self.mats, self.idx, self.w0, self.incs):
            p.view(-1)[idx] = w0 + inc

    def params(self):
        return self.incs

    def aux_bytes(self):  # what our side also counts: indices (int64), originals, increments
        return sum(i.numel() * i.element_size() + w.numel() * w.element_size() + d.numel() * d.element_size()
                   for i, w, d in zip(self.idx, self.w0, self.incs))


def prepare(model, batch):
    """Sets up args.method; returns (the Sift or None, the parameters AdamW trains, those of them that are
    not the model's own: increments or LoRA pairs)."""
    if args.method == "full":
        return None, list(model.parameters()), []
    for p in model.parameters():
        p.requires_grad_(False)
    sift = None
    if args.method == "sift":
        sift = Sift(model, batch, args.rate)
        added = sift.params()
    else:
        added = [p for m in model.targets() for p in m.attach_lora(args.r, args.alpha)]
    dense = model.dense()
    for p in dense:  # after the calibration, which must not leave gradients on them
        p.requires_grad_(True)
    return sift, added + dense, added


# ---------------------------------------------------------------- generation (--generate)
@torch.no_grad()
def forward_cached(model, ids, cache, pos0):
    """ids (1, n) at positions pos0..pos0+n-1 through the model, appending their keys and values to cache
    (one (k, v) per block, each (1, H, T, HD), or None); returns the last row's logits (V,)."""
    n = ids.shape[1]
    x = model.wte(ids) + model.wpe(torch.arange(pos0, pos0 + n, dtype=torch.long))
    for i, b in enumerate(model.h):
        a = b.attn
        h = b.ln_1(x)
        _, T, C = h.shape
        H, hd = a.n_head, C // a.n_head
        q, k, v = a.c_attn(h).split(C, dim=2)
        q, k, v = (t.view(1, T, H, hd).transpose(1, 2) for t in (q, k, v))
        if cache[i] is not None:
            k = torch.cat([cache[i][0], k], dim=2)
            v = torch.cat([cache[i][1], v], dim=2)
        cache[i] = (k, v)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
        if n > 1:
            mask = a.bias[:, :, pos0:pos0 + n, :pos0 + n]
            w = torch.where(mask, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        y = torch.matmul(F.softmax(w, dim=-1), v).transpose(1, 2).contiguous().view(1, T, C)
        x = x + a.c_proj(y)
        x = x + b.mlp(b.ln_2(x))
    return F.linear(model.ln_f(x[0, -1]), model.wte.weight)


@torch.no_grad()
def generate(model, prompt, max_new):
    cache = [None] * len(model.h)
    out = list(prompt)
    logits = forward_cached(model, torch.tensor([prompt], dtype=torch.long), cache, 0)
    for _ in range(max_new):
        out.append(int(torch.argmax(logits)))
        if len(out) == len(prompt) + max_new:
            break
        logits = forward_cached(model, torch.tensor([[out[-1]]], dtype=torch.long), cache, len(out) - 1)
    return out


def bench_generate(model):
    prompt = [875, 731, 259, 540]  # "Once upon a time" in gpt2-4m's vocabulary (bench.sh uses the same)
    generate(model, prompt, 8)
    t0 = time.perf_counter()
    out = generate(model, prompt, 200)
    decode = (len(out) - len(prompt)) / (time.perf_counter() - t0)
    long = [(i * 37) % CFG["vocab"] for i in range(1, 251)]
    times = []
    for _ in range(11):
        t1 = time.perf_counter()
        generate(model, long, 1)
        times.append(time.perf_counter() - t1)
    out = {"method": "generate", "gpt2_4m_tokens_per_s": round(decode),
           "gpt2_4m_prefill_250_tokens_per_s": round(len(long) / median(times)), "peer": "pytorch",
           "torch": torch.__version__}
    print(json.dumps(out, separators=(",", ":")))
    return 0


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def nbytes(t):
    return t.numel() * t.element_size()


def main():
    torch.manual_seed(args.seed)
    model = MODELS[ARCH](CFG)
    if args.weights:
        load_safetensors(model, args.weights)
    if args.generate:
        return bench_generate(model)
    batch = model.make_batch(CFG, args.batch, args.seq)
    sift, params, added = prepare(model, batch)
    opt = torch.optim.AdamW(params, lr=args.lr, foreach=True if args.foreach else None)
    trainable = sum(p.numel() for p in params)
    everything = list(model.parameters()) + added
    if args.check:
        ids = batch["input_ids"][0]
        n = int(batch["attention_mask"][0].sum()) if "attention_mask" in batch else len(ids)
        label = " label %d" % batch["labels"][0] if "labels" in batch else ""
        with torch.no_grad():
            loss = model(**batch).item()
        print("bench_torch check: %s row 1: %d tokens, ids %s...%s; loss before training %.6f"
              % (SHAPE, n, ids[:3].tolist(), label, loss), file=sys.stderr)

    measured = {}

    def step(measure=False):
        loss = model(**batch)
        loss.backward()
        if sift:
            sift.after_backward()
        if measure:
            grads = sum(nbytes(p.grad) for p in everything if p.grad is not None)
            state = sum(nbytes(v) for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
            measured["opt_grad_bytes"] = grads + state
        opt.step()
        if sift:
            sift.after_step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    times, cpu = [], []
    for _ in range(args.steps):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    # one more, untimed step measures the optimizer + gradient bytes after backward, before the optimizer
    # step (the optimizer state exists by then: at least one step has run)
    loss = step(measure=True)
    if not math.isfinite(loss.item()):
        raise SystemExit("bench_torch: non-finite loss")
    med = median(times)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {
        "shape": SHAPE, "method": args.method, "batch": args.batch, "seq": args.seq,
        "ms_median": round(med, 2), "ms_min": round(times[0], 2), "ms_max": round(times[-1], 2),
        "tokens_per_s": round(args.batch * args.seq / (med / 1000.0)),
        "peak_rss_mb": round(rss, 1), "opt_grad_bytes": measured["opt_grad_bytes"],
        "trainable": trainable, "steps": args.steps, "peer": "pytorch", "torch": torch.__version__,
        # CPU time of all threads per step: less sensitive than wall time to other load on the machine
        "cpu_ms_median": round(median(cpu), 2),
    }
    if sift:
        out["sparse_aux_bytes"] = sift.aux_bytes()
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
