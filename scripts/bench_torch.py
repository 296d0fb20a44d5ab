#!/usr/bin/python3
"""bench_torch.py — the PyTorch peer of scripts/bench_train.lua (see docs/performance_peer.md).

Times training steps (forward + LM loss + backward + AdamW step + zero_grad) of a small self-contained
GPT-2 written in plain PyTorch, for one method per process, and prints ONE JSON line in the schema of
bench_train.lua plus "peer":"pytorch" and "torch":<version>:

  /usr/bin/python3 scripts/bench_torch.py --shape gpt2-4m --batch 32 --seq 32 --method sift

Methods (all AdamW lr 1e-4, PyTorch defaults otherwise: betas (0.9, 0.999), eps 1e-8, weight decay 0.01):
  full  every parameter trains.
  sift  SIFT as the published PyTorch reference does it: every parameter is frozen except the 2-D block
        matrices (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj), which keep requires_grad so autograd
        computes their dense gradient; a hook per matrix gathers the top-1 % entries (chosen by |grad| on
        a first calibration batch, k = int(0.01 * numel) + 1) into a k-vector increment's .grad and the
        dense gradient is thrown away (p.grad = None); AdamW trains the increments and after the step
        W.flatten()[idx] = W0 + delta is written back under no_grad.
  lora  LoRA r=8 alpha=16 on the same matrices (A (r, in) kaiming-uniform, B (out, r) zeros), base frozen.

With --generate it times greedy generation with a key/value cache instead (the way Hugging Face's GPT-2
concatenates past keys and values): a 4-token prompt and 200 new tokens, then a 250-token prompt and one new
token (median of 11), printing {"method":"generate","gpt2_4m_tokens_per_s":…,"gpt2_4m_prefill_250_tokens_per_s":…}.

Use Debian's /usr/bin/python3 (it has PyTorch 1.13). The thread count and OMP_WAIT_POLICY=PASSIVE are set
in the environment before torch is imported (without PASSIVE, 2 threads on 2 cores contend and PyTorch
runs ~2x slower).
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

SHAPES = {
    "gpt2-4m": dict(vocab=4096, n_embd=256, n_layer=4, n_head=4, ctx=256),
    "gpt2-124M": dict(vocab=50257, n_embd=768, n_layer=12, n_head=12, ctx=1024),
}
BLOCK_MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="gpt2-4m", help="gpt2-4m | gpt2-124M (explicit dims below override)")
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--n-embd", type=int)
    ap.add_argument("--n-layer", type=int)
    ap.add_argument("--n-head", type=int)
    ap.add_argument("--ctx", type=int)
    ap.add_argument("--weights", help="model dir with config.json + (sharded) safetensors (optional)")
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
    a = ap.parse_args()
    if a.weights:
        with open(os.path.join(a.weights, "config.json")) as f:
            c = json.load(f)
        cfg = dict(vocab=c["vocab_size"], n_embd=c["n_embd"], n_layer=c["n_layer"], n_head=c["n_head"],
                   ctx=c["n_positions"])
    elif a.shape in SHAPES:
        cfg = dict(SHAPES[a.shape])
    else:
        ap.error("unknown --shape %s (gpt2-4m | gpt2-124M, or give --weights)" % a.shape)
    for k in ("vocab", "n_embd", "n_layer", "n_head", "ctx"):
        v = getattr(a, k)
        if v is not None:
            cfg[k] = v
    if a.seq > cfg["ctx"]:
        ap.error("--seq %d exceeds the context %d" % (a.seq, cfg["ctx"]))
    return a, cfg


args, CFG = parse_args()
# must happen before torch is imported
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)


# ---------------------------------------------------------------- model (same math as HF GPT2LMHeadModel)
class Conv1D(nn.Module):
    """HF GPT-2's Conv1D: weight (in, out), y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out).normal_(0.0, 0.02))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.lora = None  # (A, B, scale) when LoRA is attached

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.addmm(self.bias, x2, self.weight)
        if self.lora is not None:
            A, B, scale = self.lora
            y = y + (x2 @ A.t()) @ B.t() * scale
        return y.view(shape)


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


class GPT2(nn.Module):
    """Parameter names follow HF's "transformer." tree without the prefix; the LM head is tied to wte."""

    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab"], c["n_embd"])
        self.wpe = nn.Embedding(c["ctx"], c["n_embd"])
        nn.init.normal_(self.wte.weight, 0.0, 0.02)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02)
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=1e-5)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(T, dtype=torch.long))
        for b in self.h:
            x = b(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head
        # labels = inputs; HF shifts inside: predict token t+1 from position t, mean CE
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


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
def block_matrices(model):
    return [(n, p) for n, p in model.named_parameters() if n.endswith(BLOCK_MATRICES)]


class Sift:
    """SIFT as the published PyTorch reference implements it (dense grad via autograd, gathered by a hook)."""

    def __init__(self, model, batch, rate):
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        self.mats = block_matrices(model)
        for _, p in self.mats:
            p.requires_grad_(True)
        # calibration: top-k |grad| of the first batch
        model(batch).backward()
        self.incs, self.idx, self.w0 = [], [], []
        for _, p in self.mats:
            k = min(int(rate * p.numel()) + 1, p.numel())
            idx = p.grad.abs().flatten().topk(k).indices
            p.grad = None
            self.idx.append(idx)
            self.w0.append(p.detach().reshape(-1)[idx].clone())
            self.incs.append(nn.Parameter(torch.zeros(k)))
        for i, (_, p) in enumerate(self.mats):
            p.register_hook(self._hook(i))

    def _hook(self, i):
        inc, idx = self.incs[i], self.idx[i]

        def hook(g):
            g = g.reshape(-1).index_select(0, idx)
            inc.grad = g if inc.grad is None else inc.grad + g
            # the reference drops every dense gradient that has already been accumulated
            for _, p in self.mats:
                if p.grad is not None:
                    p.grad = None
            return None

        return hook

    def after_backward(self):
        for _, p in self.mats:  # the last matrix's dense grad is accumulated after its hook ran
            p.grad = None

    @torch.no_grad()
    def after_step(self):
        for (_, p), idx, w0, inc in zip(self.mats, self.idx, self.w0, self.incs):
            p.view(-1)[idx] = w0 + inc

    def params(self):
        return self.incs

    def aux_bytes(self):  # what our side also counts: indices (int64), originals, increments
        return sum(i.numel() * i.element_size() + w.numel() * w.element_size() + d.numel() * d.element_size()
                   for i, w, d in zip(self.idx, self.w0, self.incs))


def attach_lora(model, r, alpha):
    for p in model.parameters():
        p.requires_grad_(False)
    out = []
    mods = dict(model.named_modules())
    for n, p in block_matrices(model):
        mod = mods[n[: -len(".weight")]]
        n_in, n_out = p.shape
        A = nn.Parameter(torch.empty(r, n_in))
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        B = nn.Parameter(torch.zeros(n_out, r))
        mod.lora = (A, B, alpha / r)
        out += [A, B]
    return out


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
    model = GPT2(CFG)
    if args.weights:
        load_safetensors(model, args.weights)
    if args.generate:
        return bench_generate(model)
    gen = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, CFG["vocab"], (args.batch, args.seq), generator=gen, dtype=torch.long)

    sift = None
    if args.method == "full":
        params = list(model.parameters())
    elif args.method == "sift":
        sift = Sift(model, ids, args.rate)
        params = sift.params()
    else:
        params = attach_lora(model, args.r, args.alpha)
    opt = torch.optim.AdamW(params, lr=args.lr, foreach=True if args.foreach else None)
    trainable = sum(p.numel() for p in params)
    everything = list(model.parameters()) + ([] if args.method == "full" else params)

    measured = {}

    def step(measure=False):
        loss = model(ids)
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
        "method": args.method, "batch": args.batch, "seq": args.seq,
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
