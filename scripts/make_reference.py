#!/usr/bin/python3
"""Independent plain-PyTorch reference for fibvid's forward pass: writes the tiny random TimeSformer
(`tests/data/tiny_hf/`, Hugging Face layout, and `tests/data/tiny_castling_hf/`, the same weights plus
Castling's depthwise-convolution taps), reference activations for dense, Fibottention, SimA and Castling-ViT
attention and mixes of them (`tests/data/ref_*.safetensors`) and an end-to-end FFV1 clip with its expected
input and logits.

Written from SPEC sections 1-4 only (no transformers, no fibvid code). Needs Debian's python3 with
torch and numpy, and the `ffmpeg` CLI for the clip. Deterministic: running it twice gives identical
files. Usage: scripts/make_reference.py [--out tests/data] [--grads]

--grads writes only the gradient fixtures (`tests/data/grad_*.safetensors`): loss and parameter gradients
of a 2-clip batch under label-smoothed cross-entropy, by torch autograd in float64 (make_grads).

The reference math runs in float64 on the float32 weights and inputs, so the stored activations are the
exact answer rounded once; fibvid (float32) is compared against them with an absolute tolerance.

Fixture inputs that are not stored (to keep tests/data small) come from a generator that C reproduces
bit for bit (see gen_input): a 32-bit LCG whose top 12 bits give multiples of 1/1024 in [-2, 2).
"""
import argparse
import json
import math
import os
import random
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------
# Configuration of the tiny test model (matches fv_model_config_preset("test"))

TINY_CONFIG = {
    "image_size": 32,
    "patch_size": 16,
    "num_channels": 3,
    "num_frames": 4,
    "hidden_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 3,
    "intermediate_size": 192,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "attention_type": "divided_space_time",
}
TINY_LABELS = ["apply eye makeup", "archery", "baby crawling", "balance beam", "band marching"]
TINY_MEAN = [0.5, 0.4, 0.3]
TINY_STD = [0.2, 0.25, 0.3]
WEIGHT_SEED = 20240611
CASTLING_TAPS_SEED = 20261202  # tests/data/tiny_castling_hf: tiny_hf's weights plus these taps

# PSViT test models (SPEC 4.3, fibvid's reconstruction): 4 narrow layers on a 4x4 patch grid (32x32, patch 8),
# each with token pooling and attention sharing in both attentions: (directory, config, spatial, temporal, seed)
PSVIT_BASE = dict(TINY_CONFIG, hidden_size=24, num_attention_heads=2, intermediate_size=48, num_hidden_layers=4,
                  patch_size=8)
PSVIT_SEED = 20261203

# --------------------------------------------------------------------------------------------------
# Safetensors writing (format: u64 LE header length, JSON header padded with spaces to a multiple of 8,
# raw little-endian tensor data in header order)

_DT = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (float32/float16), written in sorted-name order."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {"dtype": _DT[a.dtype.newbyteorder("=")], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """Minimal reader used to self-check what was written: (dict name -> float32 array, metadata)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        dt = {"F32": "<f4", "F16": "<f2"}[e["dtype"]]
        b0, b1 = e["data_offsets"]
        out[name] = np.frombuffer(data[b0:b1], dtype=dt).reshape(e["shape"]).astype(np.float32)
    return out, meta


# --------------------------------------------------------------------------------------------------
# Deterministic weights and inputs

def hf_tensor_shapes(cfg, num_labels):
    """(name, shape) of every tensor in HF TimesformerForVideoClassification layout."""
    D, I, p, C = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"], cfg["num_channels"]
    P0 = (cfg["image_size"] // p) ** 2
    T0 = cfg["num_frames"]
    e = "timesformer.embeddings."
    out = [(e + "cls_token", (1, 1, D)), (e + "position_embeddings", (1, 1 + P0, D)),
           (e + "time_embeddings", (1, T0, D)),
           (e + "patch_embeddings.projection.weight", (D, C, p, p)),
           (e + "patch_embeddings.projection.bias", (D,))]
    pools = {p_["after"]: (j, p_["kind"]) for j, p_ in enumerate(cfg.get("fibvid_token_pool", []))}
    for i in range(cfg["num_hidden_layers"]):
        L = "timesformer.encoder.layer.%d." % i
        # an attention that shares the previous layer's weights projects v only (SPEC 4.3)
        sq = D if i in cfg.get("fibvid_share_spatial", []) else 3 * D
        tq = D if i in cfg.get("fibvid_share_temporal", []) else 3 * D
        lin = [("attention.attention.qkv", sq, D), ("attention.output.dense", D, D),
               ("intermediate.dense", I, D), ("output.dense", D, I),
               ("temporal_attention.attention.qkv", tq, D),
               ("temporal_attention.output.dense", D, D), ("temporal_dense", D, D)]
        for n, o, k in lin:
            out.append((L + n + ".weight", (o, k)))
            if "qkv" not in n or cfg["qkv_bias"]:
                out.append((L + n + ".bias", (o,)))
        for n in ("layernorm_before", "layernorm_after", "temporal_layernorm"):
            out += [(L + n + ".weight", (D,)), (L + n + ".bias", (D,))]
        if i in pools and pools[i][1] == "conv":
            j = pools[i][0]
            out += [("timesformer.encoder.pool.%d.weight" % j, (D, 1, 3, 3)),
                    ("timesformer.encoder.pool.%d.bias" % j, (D,))]
    out += [("timesformer.layernorm.weight", (D,)), ("timesformer.layernorm.bias", (D,)),
            ("classifier.weight", (num_labels, D)), ("classifier.bias", (num_labels,))]
    return out


def random_weights(cfg, num_labels, seed, scale=1.0):
    """Random float32 weights with magnitudes that keep every activation non-trivial: linear weights
    std ~1.6/sqrt(fan_in) (0.23 for D=48), LayerNorm gains 1 +- 0.2, biases std 0.2, embeddings std 0.5.
    @scale multiplies the linear-weight std (1.0 for fixtures; benchmarks use a smaller one)."""
    rs = np.random.RandomState(seed)
    w = {}
    for name, shape in hf_tensor_shapes(cfg, num_labels):
        if "layernorm" in name and name.endswith(".weight"):
            a = 1.0 + 0.2 * rs.standard_normal(shape)
        elif name.endswith(".bias"):
            a = 0.2 * rs.standard_normal(shape)
        elif "embeddings." in name and "patch" not in name:
            a = 0.5 * rs.standard_normal(shape)
        elif "encoder.pool." in name:
            # conv token pooling: about the 3x3 mean fibvid starts from (1/9), +- 0.05; a fan-in scaled draw (std
            # 0.53) amplified every pooled token ~1.6x and left the model's float32 gradients ill-conditioned
            a = 1.0 / 9.0 + 0.05 * rs.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            a = (scale * 1.6 / math.sqrt(fan_in)) * rs.standard_normal(shape)
        w[name] = a.astype(np.float32)
    return w


def castling_taps(cfg, seed, std=0.1):
    """Castling's depthwise-convolution taps of every layer, spatial and temporal: name -> (H, 1, 9, 1) float32,
    std @std (about the size of the l2-normalised attention output's elements, so both terms matter)."""
    rs = np.random.RandomState(seed)
    H = cfg["num_attention_heads"]
    out = {}
    for i in range(cfg["num_hidden_layers"]):
        for which in ("attention", "temporal_attention"):
            name = "timesformer.encoder.layer.%d.%s.attention.dwconv.weight" % (i, which)
            out[name] = (std * rs.standard_normal((H, 1, CASTLING_TAPS, 1))).astype(np.float32)
    return out


def gen_input(seed, n):
    """n floats: state = state*1664525 + 1013904223 (mod 2^32); value = ((state >> 20) - 2048) / 1024.
    Exact in float32, reproduced in tests/test_forward.c."""
    out = np.empty(n, dtype=np.float32)
    s = seed & 0xFFFFFFFF
    vals = []
    for _ in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        vals.append(((s >> 20) - 2048) / 1024.0)
    out[:] = vals
    return out


# --------------------------------------------------------------------------------------------------
# Fibottention (SPEC section 3), plain Python as in the reference code

PHI = (1 + math.sqrt(5)) / 2


def get_fibonacci(a, b, w):
    seq = [a, b]
    while seq[-1] <= w:
        seq.append(seq[-1] + seq[-2])
    return seq[:-1]


def head_offsets(h, wmin, wmax, modified):
    """Per-head offset lists (unshuffled) for heads i = 1..h."""
    out = []
    for i in range(1, h + 1):
        a = int(math.floor(math.floor(i * PHI) * PHI))
        b = int(math.floor(math.floor(i * PHI) * PHI ** 2))
        w = wmax if h == 1 else wmin + int((wmax - wmin) / (h - 1) * (i - 1))
        if modified:
            b2 = b - a
            a2 = a - b2
            out.append(get_fibonacci(a2, b2, w))
        else:
            out.append(get_fibonacci(a, b, w))
    return out


def layer_offsets(heads, wmin, wmax, modified, shuffle, depth_id):
    lst = head_offsets(heads, wmin, wmax, modified)
    if shuffle:
        rnd = random.Random()
        rnd.seed(depth_id)  # same as the reference's random.seed(depth_id); random.shuffle(lst)
        lst = lst[:]
        rnd.shuffle(lst)
    return lst


def offsets_mask(offsets, n):
    """(n, n) 0/1 mask: query j attends key k iff |j-k| in offsets."""
    m = torch.zeros(n, n, dtype=torch.float64)
    j = torch.arange(n)
    d = (j[:, None] - j[None, :]).abs()
    for o in set(offsets):
        m[d == o] = 1.0
    return m


def resolve_window(att, which, n):
    """Defaults: spatial wmin 5, wmax N//3; temporal wmin 1, wmax T-1 (n = N or T)."""
    if which == "spatial":
        wmin = att["wmin"] if att["wmin"] > 0 else 5
        wmax = att["wmax"] if att["wmax"] > 0 else n // 3
    else:
        wmin = att["wmin"] if att["wmin"] > 0 else 1
        wmax = att["wmax"] if att["wmax"] > 0 else n - 1
    return wmin, wmax


def build_masks(att, which, heads, n, depth_id):
    """(heads, L, L) mask for one layer, or None for dense. Spatial: L = 1 + n (cls row/col on);
    temporal: L = n frames, offset 0 always on. Also returns the offset lists."""
    if att["kind"] != "fib":
        return None, None
    wmin, wmax = resolve_window(att, which, n)
    offs = layer_offsets(heads, wmin, wmax, att["variant"] == "modified", att["shuffle"], depth_id)
    ms = []
    for o in offs:
        if which == "spatial":
            m = torch.ones(n + 1, n + 1, dtype=torch.float64)
            m[1:, 1:] = offsets_mask(o, n)
        else:
            m = offsets_mask(list(o) + [0], n)
        ms.append(m)
    return torch.stack(ms), offs


DENSE = {"kind": "dense", "variant": "modified", "semantics": "zero", "wmin": 0, "wmax": 0, "shuffle": 1}
SIMA = dict(DENSE, kind="sima")
CASTLING = dict(DENSE, kind="castling")


def fib(semantics="zero", variant="modified", wmin=0, wmax=0, shuffle=1):
    return {"kind": "fib", "variant": variant, "semantics": semantics, "wmin": wmin, "wmax": wmax,
            "shuffle": shuffle}


# --------------------------------------------------------------------------------------------------
# SimA and Castling-ViT (SPEC 4.1, 4.2), on q, k, v (B, H, L, d), written from the SPEC text; the formulas were
# compared by hand with UCDvision/sima (class SimA) and GATECH-EIC/Castling-ViT (LinAngularAttention)

NORM_EPS = 1e-12
CASTLING_TAPS = 9
AUX_THRESHOLD = 0.02


def sima_attention(q, k, v):
    """l1 normalisation of every (head, channel) column over the tokens, then q^ (k^^T v): no softmax, no scale."""
    qh = q / q.abs().sum(dim=-2, keepdim=True).clamp_min(NORM_EPS)
    kh = k / k.abs().sum(dim=-2, keepdim=True).clamp_min(NORM_EPS)
    return qh @ (kh.transpose(-2, -1) @ v)


def castling_attention(q, k, v, dw=None, lam=0.0):
    """0.5 v + (1/pi) q^ (k^^T v) with q^, k^ l2-normalised per token; + lam * S v (S: the softmax of the raw
    q k^T / sqrt(d) where it exceeds 0.02, the indicator without gradient); each token's output l2-normalised;
    plus the depthwise convolution of v along the tokens with the head's 9 taps (None: zero)."""
    d = q.shape[-1]
    qh = q / q.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    kh = k / k.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    x = 0.5 * v + (1.0 / math.pi) * (qh @ (kh.transpose(-2, -1) @ v))
    if lam > 0.0:
        a = ((q @ k.transpose(-2, -1)) * (d ** -0.5)).softmax(dim=-1)
        x = x + lam * ((a * (a.detach() > AUX_THRESHOLD).to(a.dtype)) @ v)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    if dw is not None:
        # PyTorch Conv2d(H, H, (9, 1), padding (4, 0), groups H) over (B, H, L, d): tap i reads token n - 4 + i
        x = x + F.conv2d(v, dw, padding=(CASTLING_TAPS // 2, 0), groups=v.shape[1])
    return x


# --------------------------------------------------------------------------------------------------
# TimeSformer, divided space-time (SPEC section 1)

class Ref:
    """Plain-PyTorch TimeSformer over a dict of HF-named weights; runs in @dtype."""

    def __init__(self, cfg, weights, dtype=torch.float64):
        self.cfg = cfg
        self.dtype = dtype
        self.w = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)).to(dtype) for k, v in weights.items()}
        self.eps = cfg["layer_norm_eps"]
        self.heads = cfg["num_attention_heads"]
        self._masks = {}

    def _mask(self, att, which, n, depth):
        # cached like the reference code's per-depth cache: masks depend only on the settings and shape
        key = (which, n, depth) + tuple(sorted(att.items()))
        if key not in self._masks:
            m, _ = build_masks(att, which, self.heads, n, depth)
            self._masks[key] = None if m is None else m.to(self.dtype)
        return self._masks[key]

    def _ln(self, x, pre):
        D = x.shape[-1]
        return F.layer_norm(x, (D,), self.w[pre + ".weight"], self.w[pre + ".bias"], self.eps)

    def _lin(self, x, pre):
        return F.linear(x, self.w[pre + ".weight"], self.w.get(pre + ".bias"))

    def _mha(self, x, qkv, proj, mask, att, dw=None, lam=0.0, shared=None):
        """x (B, L, D) -> qkv (B, L, 3, H, hd) -> q, k, v (B, H, L, hd) -> the kind's attention (SPEC 3, 4.1,
        4.2) -> output.dense. @dw: Castling's taps (H, 1, 9, 1) or None (zero); @lam: its auxiliary branch.
        @shared: post-softmax weights (B, H, L, L) of the previous layer (SPEC 4.3): qkv then projects v only.
        Returns the output and the softmax kinds' post-softmax weights (None for the others)."""
        B, L, D = x.shape
        H = self.heads
        hd = D // H
        if shared is not None:
            v = self._lin(x, qkv).reshape(B, L, H, hd).transpose(1, 2)
            o = (shared @ v).transpose(1, 2).reshape(B, L, D)
            return self._lin(o, proj), shared
        t = self._lin(x, qkv).reshape(B, L, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = t[0], t[1], t[2]
        a = None
        if att["kind"] == "sima":
            o = sima_attention(q, k, v)
        elif att["kind"] == "castling":
            o = castling_attention(q, k, v, dw, lam)
        else:
            s = (q @ k.transpose(-2, -1)) * (hd ** -0.5)  # (B, H, L, L)
            if mask is not None:
                if att["semantics"] == "zero":
                    s = s * mask
                else:
                    s = s.masked_fill(mask == 0, float("-inf"))
            a = s.softmax(dim=-1)
            o = a @ v
        o = o.transpose(1, 2).reshape(B, L, D)
        return self._lin(o, proj), a

    def _pool(self, x, T, gh, gw, kind, j):
        """PSViT token pooling (SPEC 4.3, fibvid's reconstruction): x (1 + gh*gw*T, D) in token order
        [cls, n0t0, n0t1, ...] -> each frame's grid ceil(gh/2) x ceil(gw/2); cls unchanged."""
        D = x.shape[1]
        X = x[1:].reshape(gh, gw, T, D).permute(2, 3, 0, 1)  # (T, D, gh, gw)
        ph, pw = (gh + 1) // 2, (gw + 1) // 2
        if kind == "conv":
            Y = F.conv2d(X, self.w["timesformer.encoder.pool.%d.weight" % j],
                         self.w["timesformer.encoder.pool.%d.bias" % j], stride=2, padding=1, groups=D)
        else:
            # the 2x2 windows' cells one offset at a time, a window at an odd edge covering only its valid cells
            cells, valid = [], []
            for dy in (0, 1):
                for dx in (0, 1):
                    c = X[:, :, dy::2, dx::2]
                    pad = (0, pw - c.shape[3], 0, ph - c.shape[2])
                    ok = torch.ones(c.shape[2], c.shape[3], dtype=X.dtype)
                    cells.append(F.pad(c, pad))
                    valid.append(F.pad(ok, pad))
            cells, valid = torch.stack(cells), torch.stack(valid)  # (4, T, D, ph, pw), (4, ph, pw)
            if kind == "avg":
                Y = cells.sum(0) / valid.sum(0)
            else:
                Y = cells.masked_fill(valid[:, None, None] == 0, float("-inf")).max(0).values
        x = torch.cat([x[:1], Y.permute(2, 3, 0, 1).reshape(ph * pw * T, D)], dim=0)
        return x, ph, pw

    def embed(self, frames):
        """frames (T, 3, H, W) -> (1 + P*T, D) tokens [cls, n0t0, n0t1, ...], plus (T, gh, gw)."""
        p = self.cfg["patch_size"]
        e = "timesformer.embeddings."
        x = F.conv2d(frames, self.w[e + "patch_embeddings.projection.weight"],
                     self.w[e + "patch_embeddings.projection.bias"], stride=p)  # (T, D, gh, gw)
        T, D, gh, gw = x.shape
        P = gh * gw
        x = x.flatten(2).transpose(1, 2)  # (T, P, D), patches row-major
        pos = self.w[e + "position_embeddings"]  # (1, 1+P0, D)
        if pos.shape[1] != 1 + P:
            # original TimeSformer: nearest-neighbour interpolation of the square grid to (gh, gw)
            g0 = int(math.sqrt(pos.shape[1] - 1))
            # (interpolated in float32 as the float32 original does: torch computes the source index
            # as floor(dst * (float)in/out) in float, which differs from exact integer division for a
            # few sizes, e.g. 14 -> 46; nearest only copies values, so nothing else is rounded)
            other = pos[0, 1:].transpose(0, 1).reshape(1, D, g0, g0).float()
            other = F.interpolate(other, size=(gh, gw), mode="nearest").to(self.dtype)
            pos = torch.cat([pos[:, :1], other.flatten(2).transpose(1, 2)], dim=1)
        x = x + pos[:, 1:]
        cls = self.w[e + "cls_token"][0] + pos[0, :1]  # (1, D)
        tim = self.w[e + "time_embeddings"]  # (1, T0, D)
        if tim.shape[1] != T:
            tim = F.interpolate(tim.transpose(1, 2).float(), size=T, mode="nearest").transpose(1, 2).to(self.dtype)
        x = x.transpose(0, 1) + tim  # (P, T, D)
        return torch.cat([cls, x.reshape(P * T, D)], dim=0), (T, gh, gw)

    def forward(self, frames, spatial=DENSE, temporal=DENSE, hook=None, lam=0.0):
        """frames (T, 3, H, W) -> logits; hook(name, tensor) sees embeddings, layer.i, final_norm. @lam: the
        weight of Castling's training-only auxiliary branch (0 at inference)."""
        frames = frames.to(self.dtype)
        x, (T, gh, gw) = self.embed(frames)
        P = gh * gw
        D = x.shape[1]
        if hook:
            hook("embeddings", x)
        pools = {p_["after"]: (j, p_["kind"]) for j, p_ in enumerate(self.cfg.get("fibvid_token_pool", []))}
        share_s = set(self.cfg.get("fibvid_share_spatial", []))
        share_t = set(self.cfg.get("fibvid_share_temporal", []))
        sa = ta = None  # the previous layer's post-softmax weights
        for i in range(self.cfg["num_hidden_layers"]):
            L = "timesformer.encoder.layer.%d." % i
            smask = self._mask(spatial, "spatial", P, i)
            tmask = self._mask(temporal, "temporal", T, i)
            c = x[:1]                            # (1, D)
            X = x[1:].reshape(P, T, D)           # (P, T, D): each patch over its frames
            r, ta = self._mha(self._ln(X, L + "temporal_layernorm"), L + "temporal_attention.attention.qkv",
                              L + "temporal_attention.output.dense", tmask, temporal,
                              self.w.get(L + "temporal_attention.attention.dwconv.weight"), lam,
                              ta if i in share_t else None)
            Xt = X + self._lin(r, L + "temporal_dense")
            seq = torch.cat([c.expand(T, 1, D), Xt.transpose(0, 1)], dim=1)  # (T, 1+P, D)
            S, sa = self._mha(self._ln(seq, L + "layernorm_before"), L + "attention.attention.qkv",
                              L + "attention.output.dense", smask, spatial,
                              self.w.get(L + "attention.attention.dwconv.weight"), lam,
                              sa if i in share_s else None)
            c2 = c + S[:, 0].mean(dim=0, keepdim=True)
            X2 = Xt + S[:, 1:].transpose(0, 1)  # (P, T, D)
            y = torch.cat([c2, X2.reshape(P * T, D)], dim=0)
            h = F.gelu(self._lin(self._ln(y, L + "layernorm_after"), L + "intermediate.dense"))
            x = y + self._lin(h, L + "output.dense")
            if hook:
                hook("layer.%d" % i, x)
            if i in pools:
                j, kind = pools[i]
                x, gh, gw = self._pool(x, T, gh, gw, kind, j)
                P = gh * gw
                if hook:
                    hook("pool.%d" % j, x)
        cls = self._ln(x[0], "timesformer.layernorm")
        if hook:
            hook("final_norm", cls)
        return self._lin(cls, "classifier")


def flops(cfg, num_labels, T, H, W, spatial=DENSE, temporal=DENSE):
    """Analytic FLOPs (multiply-add = 2) of one forward; sparse attention counts attended pairs only."""
    D, I, p, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"], cfg["num_attention_heads"]
    P = (H // p) * (W // p)
    n = P * T
    f = 2.0 * n * D * 3 * p * p  # patch embedding
    for i in range(cfg["num_hidden_layers"]):
        tm, _ = build_masks(temporal, "temporal", heads, T, i)
        sm, _ = build_masks(spatial, "spatial", heads, P, i)
        tpairs = P * (tm.sum().item() if tm is not None else heads * T * T)
        spairs = T * (sm.sum().item() if sm is not None else heads * (1 + P) ** 2)
        hd = D // heads
        f += 2.0 * n * D * 3 * D + 2.0 * n * D * D * 2        # temporal qkv, output.dense, temporal_dense
        f += 2.0 * 2 * tpairs * hd                              # q k^T and a v
        f += 2.0 * T * (1 + P) * D * 4 * D                      # spatial qkv + output.dense
        f += 2.0 * 2 * spairs * hd
        f += 2.0 * (1 + n) * D * I * 2                          # MLP
    f += 2.0 * D * num_labels
    return f


# --------------------------------------------------------------------------------------------------
# Second, loop-based implementation of the same SPEC text (numpy, float64), written independently of
# Ref's tensor reshapes: guards the reference against its own token-order or broadcasting mistakes.

def naive_forward(cfg, weights, frames, spatial=DENSE, temporal=DENSE):
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    fr = np.asarray(frames, dtype=np.float64)
    T, C, H, W = fr.shape
    p, D, heads = cfg["patch_size"], cfg["hidden_size"], cfg["num_attention_heads"]
    eps = cfg["layer_norm_eps"]
    gh, gw = H // p, W // p
    P = gh * gw
    T0 = cfg["num_frames"]
    g0 = cfg["image_size"] // p
    e = "timesformer.embeddings."
    pos = w[e + "position_embeddings"][0]
    tim = w[e + "time_embeddings"][0]
    pw = w[e + "patch_embeddings.projection.weight"].reshape(D, -1)
    pb = w[e + "patch_embeddings.projection.bias"]

    def nearest(dst, n_in, n_out):  # torch's float32 rule: floor(dst * (float)in / out)
        return min(int(np.floor(np.float32(dst) * (np.float32(n_in) / np.float32(n_out)))), n_in - 1)

    def tok(n, t):
        return 1 + n * T + t

    x = np.zeros((1 + P * T, D))
    x[0] = w[e + "cls_token"][0, 0] + pos[0]
    for t in range(T):
        for n in range(P):
            r, c = divmod(n, gw)
            patch = fr[t, :, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(-1)
            if P == g0 * g0:
                pe = pos[1 + n]
            else:
                pe = pos[1 + nearest(r, g0, gh) * g0 + nearest(c, g0, gw)]
            te = tim[t] if T == T0 else tim[nearest(t, T0, T)]
            x[tok(n, t)] = pw @ patch + pb + pe + te
    acts = {"embeddings": x.copy()}

    def ln(v, pre):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + eps) * w[pre + ".weight"] + w[pre + ".bias"]

    def lin(v, pre):
        return v @ w[pre + ".weight"].T + w[pre + ".bias"]

    def allowed(att, which, n_tok, depth):
        """allowed[h][j][k] for a sequence of n_tok tokens, from the offset sets directly."""
        if att["kind"] != "fib":
            return None
        n = n_tok - 1 if which == "spatial" else n_tok
        wmin, wmax = resolve_window(att, which, n)
        offs = layer_offsets(heads, wmin, wmax, att["variant"] == "modified", att["shuffle"], depth)
        a = np.zeros((heads, n_tok, n_tok), dtype=bool)
        for h in range(heads):
            s = set(offs[h]) | ({0} if which == "temporal" else set())
            for j in range(n_tok):
                for k in range(n_tok):
                    if which == "spatial":
                        a[h, j, k] = j == 0 or k == 0 or abs(j - k) in s
                    else:
                        a[h, j, k] = abs(j - k) in s
        return a

    def linear_kind(att, q, k, v, taps):
        """One head of SimA or Castling, token by token (no matrix products)."""
        L, hd = q.shape
        out = np.zeros((L, hd))
        if att["kind"] == "sima":
            qs = [max(sum(abs(q[j, c]) for j in range(L)), NORM_EPS) for c in range(hd)]
            ks = [max(sum(abs(k[j, c]) for j in range(L)), NORM_EPS) for c in range(hd)]
            for j in range(L):
                for kk in range(L):
                    out[j] += sum(q[j, c] / qs[c] * k[kk, c] / ks[c] for c in range(hd)) * v[kk]
            return out
        qn = [q[j] / max(math.sqrt(sum(x * x for x in q[j])), NORM_EPS) for j in range(L)]
        kn = [k[j] / max(math.sqrt(sum(x * x for x in k[j])), NORM_EPS) for j in range(L)]
        for j in range(L):
            x = 0.5 * v[j] + sum(float(qn[j] @ kn[kk]) / math.pi * v[kk] for kk in range(L))
            x = x / max(math.sqrt(sum(e * e for e in x)), NORM_EPS)
            for i in range(CASTLING_TAPS):
                src = j - CASTLING_TAPS // 2 + i
                if taps is not None and 0 <= src < L:
                    x = x + taps[i] * v[src]
            out[j] = x
        return out

    def mha(seq, qkv, proj, allow, att, dw):
        L = seq.shape[0]
        hd = D // heads
        t3 = lin(seq, qkv)
        out = np.zeros((L, D))
        for h in range(heads):
            q = t3[:, h * hd:(h + 1) * hd]
            k = t3[:, D + h * hd:D + (h + 1) * hd]
            v = t3[:, 2 * D + h * hd:2 * D + (h + 1) * hd]
            if att["kind"] in ("sima", "castling"):
                out[:, h * hd:(h + 1) * hd] = linear_kind(att, q, k, v, None if dw is None else dw[h, 0, :, 0])
                continue
            semantics = att["semantics"]
            for j in range(L):
                sc = np.array([q[j] @ k[kk] / math.sqrt(hd) for kk in range(L)])
                keep = np.ones(L, dtype=bool) if allow is None else allow[h, j]
                if allow is not None and semantics == "zero":
                    sc = np.where(keep, sc, 0.0)
                    keep = np.ones(L, dtype=bool)
                m = sc[keep].max()
                e_ = np.where(keep, np.exp(sc - m), 0.0)
                out[j, h * hd:(h + 1) * hd] = (e_ / e_.sum()) @ v
        return lin(out, proj)

    def gelu(v):
        return 0.5 * v * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))

    for i in range(cfg["num_hidden_layers"]):
        L = "timesformer.encoder.layer.%d." % i
        ta = allowed(temporal, "temporal", T, i)
        sa = allowed(spatial, "spatial", 1 + P, i)
        xt = x.copy()
        for n in range(P):
            rows = [tok(n, t) for t in range(T)]
            r = mha(ln(x[rows], L + "temporal_layernorm"), L + "temporal_attention.attention.qkv",
                    L + "temporal_attention.output.dense", ta, temporal,
                    w.get(L + "temporal_attention.attention.dwconv.weight"))
            xt[rows] = x[rows] + lin(r, L + "temporal_dense")
        y = xt.copy()
        cls_acc = np.zeros(D)
        for t in range(T):
            rows = [tok(n, t) for n in range(P)]
            seq = np.vstack([x[:1], xt[rows]])
            s = mha(ln(seq, L + "layernorm_before"), L + "attention.attention.qkv",
                    L + "attention.output.dense", sa, spatial, w.get(L + "attention.attention.dwconv.weight"))
            cls_acc += s[0] / T
            y[rows] = xt[rows] + s[1:]
        y[0] = x[0] + cls_acc
        x = y + lin(gelu(lin(ln(y, L + "layernorm_after"), L + "intermediate.dense")), L + "output.dense")
        acts["layer.%d" % i] = x.copy()
    acts["final_norm"] = ln(x[0], "timesformer.layernorm")
    acts["logits"] = lin(acts["final_norm"], "classifier")
    return acts


def self_check(cfg, weights, ref, frames, spatial, temporal, what):
    acts = {}
    ref.forward(torch.from_numpy(frames), spatial, temporal,
                lambda n, t: acts.__setitem__(n, t.detach().numpy()))
    acts["logits"] = ref.forward(torch.from_numpy(frames), spatial, temporal).detach().numpy()
    nv = naive_forward(cfg, weights, frames, spatial, temporal)
    d = max(float(np.abs(acts[k] - nv[k]).max()) for k in nv)
    print("self-check %-28s loop implementation vs Ref: max abs diff %.3g" % (what, d))
    if d > 1e-9:
        sys.exit("make_reference: the two implementations disagree (%s)" % what)


# --------------------------------------------------------------------------------------------------
# Fixture generation

def settings_meta(prefix, att, which, heads, n, layers):
    m = {prefix + "." + k: str(v) for k, v in att.items()}
    if att["kind"] == "fib":
        wmin, wmax = resolve_window(att, which, n)
        m[prefix + ".wmin_resolved"] = str(wmin)
        m[prefix + ".wmax_resolved"] = str(wmax)
        m[prefix + ".offsets"] = json.dumps([build_masks(att, which, heads, n, d)[1] for d in range(layers)],
                                            separators=(",", ":"))
    return m


def make_fixture(path, ref, cfg, frames, spatial, temporal, keep, input_seed, store_input, desc, model="tiny_hf"):
    acts = {}

    def hook(name, t):
        acts[name] = t.detach().to(torch.float32).numpy().copy()

    logits = ref.forward(torch.from_numpy(frames), spatial, temporal, hook)
    acts["logits"] = logits.to(torch.float32).numpy()
    T, _, H, W = frames.shape
    heads, layers = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    P = (H // cfg["patch_size"]) * (W // cfg["patch_size"])
    tensors = {k: v for k, v in acts.items() if keep is None or k in keep}
    if store_input:
        # the generator's values (k/1024 in [-2, 2)) are exact in F16: half the bytes, same numbers
        assert np.array_equal(frames.astype(np.float16).astype(np.float32), frames)
        tensors["input"] = frames.astype(np.float16)
    meta = {"generator": "scripts/make_reference.py", "description": desc, "model": model,
            "T": str(T), "H": str(H), "W": str(W), "input_seed": str(input_seed) if input_seed is not None else "",
            "tolerance": "1e-4"}
    meta.update(settings_meta("spatial", spatial, "spatial", heads, P, layers))
    meta.update(settings_meta("temporal", temporal, "temporal", heads, T, layers))
    write_safetensors(path, tensors, meta)
    big = max(float(np.abs(v).max()) for v in acts.values())
    print("%-36s T=%d %3dx%-3d  max|act| %7.3f  logits %s" % (
        os.path.basename(path), T, H, W, big, np.array2string(acts["logits"], precision=4)))
    return acts


def make_clip(out_dir, ref, cfg):
    """8 frames 48x32 of smooth random RGB, lossless FFV1 in MKV, plus the expected model input/logits."""
    nf, w, h = 8, 48, 32
    rs = np.random.RandomState(7)
    # smooth-ish: a coarse random grid upsampled bilinearly, plus mild noise; varies over time
    coarse = rs.uniform(20, 235, size=(nf, 3, 5, 7))
    t = torch.from_numpy(coarse)
    up = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True).numpy()
    up += rs.normal(0, 2, size=up.shape)
    rgb = np.clip(np.rint(up), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (nf, h, w, 3)
    raw = np.ascontiguousarray(rgb).tobytes()
    path = os.path.join(out_dir, "clip_ffv1.mkv")
    tmp = path + ".tmp.mkv"
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", "%dx%d" % (w, h), "-r", "25", "-i", "-", "-c:v", "ffv1", "-level", "3", "-pix_fmt", "bgr0",
           "-g", "1", "-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1", tmp]
    subprocess.run(cmd, input=raw, check=True)
    os.replace(tmp, path)
    dec = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, stdout=subprocess.PIPE).stdout
    if dec != raw:
        sys.exit("make_reference: %s does not decode to the frames written" % path)
    # uniform sampling, test mode: middle frame of each of T segments
    T = cfg["num_frames"]
    idx = [int((i + 0.5) * nf / T) for i in range(T)]
    S = cfg["image_size"]
    x0, y0 = (w - S) // 2, (h - S) // 2  # short side 32 == image_size: no resize
    crop = rgb[idx, y0:y0 + S, x0:x0 + S, :].astype(np.float64) / 255.0  # (T, S, S, 3)
    crop = (crop - np.array(TINY_MEAN)) / np.array(TINY_STD)
    frames = np.ascontiguousarray(crop.transpose(0, 3, 1, 2)).astype(np.float32)  # (T, 3, S, S)
    acts = {}
    logits = ref.forward(torch.from_numpy(frames),
                         hook=lambda n, t: acts.__setitem__(n, t.to(torch.float32).numpy().copy()))
    logits = logits.to(torch.float32).numpy()
    meta = {"generator": "scripts/make_reference.py", "model": "tiny_hf", "clip": "clip_ffv1.mkv",
            "frames": json.dumps(idx), "crop": "center x0=%d y0=%d" % (x0, y0),
            "T": str(T), "H": str(S), "W": str(S), "tolerance": "1e-4"}
    write_safetensors(os.path.join(out_dir, "ref_clip.safetensors"), {"input": frames, "logits": logits, "final_norm": acts["final_norm"]}, meta)
    print("%-36s frames %s  logits %s" % ("ref_clip.safetensors", idx, np.array2string(logits, precision=4)))


def write_model(out_dir, cfg, weights, name="tiny_hf", extra=None):
    """A Hugging Face model directory: config.json (+ @extra keys, e.g. fibvid's attention objects),
    preprocessor_config.json and model.safetensors."""
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    conf = {"architectures": ["TimesformerForVideoClassification"], "model_type": "timesformer"}
    conf.update(cfg)
    conf.update(extra or {})
    conf.update({"attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0, "drop_path_rate": 0.0,
                 "initializer_range": 0.02, "torch_dtype": "float32",
                 "id2label": {str(i): l for i, l in enumerate(TINY_LABELS)},
                 "label2id": {l: i for i, l in enumerate(TINY_LABELS)},
                 "problem_type": "single_label_classification"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    S = cfg["image_size"]
    pre = {"image_processor_type": "VideoMAEImageProcessor", "do_resize": True,
           "size": {"shortest_edge": S}, "resample": 2, "do_center_crop": True,
           "crop_size": {"height": S, "width": S}, "do_rescale": True, "rescale_factor": 1 / 255,
           "do_normalize": True, "image_mean": TINY_MEAN, "image_std": TINY_STD}
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(d, "model.safetensors"), weights, {"format": "pt"})
    back, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    assert all(np.array_equal(back[k], weights[k]) for k in weights)


def check_offsets_against_reference(path):
    """Cross-check the offset generator against the stored reference output (manual runs only)."""
    if not os.path.exists(path):
        return
    ref = json.load(open(path))
    for key, mod in (("N196_h12_mod", True), ("N196_h12_orig", False)):
        if key not in ref:
            continue
        for d, want in enumerate(ref[key]):
            got = layer_offsets(12, 5, 196 // 3, mod, True, d)
            if got != want:
                sys.exit("make_reference: offsets differ from %s at %s depth %d" % (path, key, d))
    print("offsets match %s" % path)


# --------------------------------------------------------------------------------------------------
# Gradient fixtures (tests/test_grad.c): torch autograd in float64 through Ref

GRAD_LABELS = [3, 1]
GRAD_SMOOTHING = 0.1
GRAD_SAMPLES = 256   # elements kept per tensor (all of a tensor with at most this many)
GRAD_STRIDE = 7919   # sampled element i of a larger tensor: (i * GRAD_STRIDE + 13) % count


def c_tensor_order(cfg, num_labels, weights):
    """(name, shape) in fibvid's fv_model_visit_tensors order (src/model/model.c), which test_grad.c walks;
    an attention's Castling taps come right after its qkv tensors when @weights has them."""
    shapes = dict(hf_tensor_shapes(cfg, num_labels))
    shapes.update({n: tuple(a.shape) for n, a in weights.items() if n.endswith("dwconv.weight")})
    e = "timesformer.embeddings."
    names = [e + "cls_token", e + "position_embeddings", e + "time_embeddings",
             e + "patch_embeddings.projection.weight", e + "patch_embeddings.projection.bias"]
    per_layer = ["attention.attention.qkv.weight", "attention.attention.qkv.bias",
                 "attention.attention.dwconv.weight", "attention.output.dense.weight",
                 "attention.output.dense.bias", "intermediate.dense.weight", "intermediate.dense.bias",
                 "output.dense.weight", "output.dense.bias", "layernorm_before.weight", "layernorm_before.bias",
                 "layernorm_after.weight", "layernorm_after.bias", "temporal_layernorm.weight",
                 "temporal_layernorm.bias", "temporal_attention.attention.qkv.weight",
                 "temporal_attention.attention.qkv.bias", "temporal_attention.attention.dwconv.weight",
                 "temporal_attention.output.dense.weight",
                 "temporal_attention.output.dense.bias", "temporal_dense.weight", "temporal_dense.bias"]
    pools = {p_["after"]: j for j, p_ in enumerate(cfg.get("fibvid_token_pool", []))}
    for i in range(cfg["num_hidden_layers"]):
        for n in per_layer:
            name = "timesformer.encoder.layer.%d.%s" % (i, n)
            if name in shapes:
                names.append(name)
        for n in ("weight", "bias"):  # a conv pooling after the layer
            name = "timesformer.encoder.pool.%d.%s" % (pools.get(i, -1), n)
            if name in shapes:
                names.append(name)
    names += ["timesformer.layernorm.weight", "timesformer.layernorm.bias", "classifier.weight", "classifier.bias"]
    assert sorted(names) == sorted(shapes)
    return [(n, shapes[n]) for n in names]


def grad_sample_index(count):
    if count <= GRAD_SAMPLES:
        return np.arange(count)
    return (np.arange(GRAD_SAMPLES, dtype=np.int64) * GRAD_STRIDE + 13) % count


def make_grad_fixture(path, cfg, weights, T, H, W, seeds, spatial, temporal, desc, model="tiny_hf", lam=0.0):
    """Loss and parameter gradients of a batch of len(seeds) clips (gen_input(seed), (T, 3, H, W) each) with
    labels GRAD_LABELS, mean label-smoothed cross-entropy (smoothing 0.1), by autograd in float64.
    Stored per tensor, in C visit order, concatenated: the sampled gradient elements ("grad_samples"), the
    gradient's L2 norm ("grad_norm") and its dot product with gen_input(1000 + tensor index) ("grad_proj")."""
    ref = Ref(cfg, weights)
    for t in ref.w.values():
        t.requires_grad_(True)
    labels = GRAD_LABELS[:len(seeds)]
    logits = torch.stack([ref.forward(torch.from_numpy(gen_input(s, T * 3 * H * W).reshape(T, 3, H, W)),
                                      spatial, temporal, lam=lam) for s in seeds])
    loss = F.cross_entropy(logits, torch.tensor(labels), label_smoothing=GRAD_SMOOTHING)
    loss.backward()
    order = c_tensor_order(cfg, len(TINY_LABELS), weights)
    samples, norms, projs = [], [], []
    for i, (name, shape) in enumerate(order):
        g = ref.w[name].grad.detach().numpy().reshape(-1)
        samples.append(g[grad_sample_index(g.size)])
        norms.append(np.sqrt((g * g).sum()))
        projs.append((g * gen_input(1000 + i, g.size).astype(np.float64)).sum())
    heads, layers = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    P = (H // cfg["patch_size"]) * (W // cfg["patch_size"])
    tensors = {"loss": np.array([loss.item()], dtype=np.float32),
               "logits": logits.detach().numpy().astype(np.float32),
               "grad_samples": np.concatenate(samples).astype(np.float32),
               "grad_norm": np.array(norms, dtype=np.float32),
               "grad_proj": np.array(projs, dtype=np.float32)}
    meta = {"generator": "scripts/make_reference.py --grads", "description": desc, "model": model,
            "T": str(T), "H": str(H), "W": str(W), "input_seeds": json.dumps(seeds), "labels": json.dumps(labels),
            "label_smoothing": str(GRAD_SMOOTHING), "samples": str(GRAD_SAMPLES), "stride": str(GRAD_STRIDE),
            "tensors": json.dumps([n for n, _ in order], separators=(",", ":"))}
    meta.update(settings_meta("spatial", spatial, "spatial", heads, P, layers))
    meta.update(settings_meta("temporal", temporal, "temporal", heads, T, layers))
    if lam:
        meta["aux_weight"] = str(lam)  # Castling's auxiliary branch (absent: 0)
    write_safetensors(path, tensors, meta)
    dens = []
    for which, att, n in (("spatial", spatial, P), ("temporal", temporal, T)):
        m, _ = build_masks(att, which, heads, n, 0)
        dens.append("%s %.2f" % (which, 1.0 if m is None else float(m.mean())))
    print("%-36s T=%d %3dx%-3d loss %.6f  |g| max %.3g  layer-0 density %s" % (
        os.path.basename(path), T, H, W, loss.item(), max(norms), ", ".join(dens)))


def psvit_models():
    """The PSViT test models: avg pooling after layer 0 and a spatial sharing chain 1 -> 2 -> 3 of fib zero
    weights (temporal: 2 shares 1's dense weights); max pooling after layer 1, spatial 1 shares 0 (fib exclude),
    temporal 3 shares 2 (fib zero); conv pooling after 0 and avg after 2, 2 shares 1 in both attentions (dense
    spatial, fib exclude temporal)."""
    return [
        ("tiny_psvit_avg_hf", dict(PSVIT_BASE, fibvid_token_pool=[{"after": 0, "kind": "avg"}],
                                   fibvid_share_spatial=[2, 3], fibvid_share_temporal=[2]), fib("zero"), DENSE),
        ("tiny_psvit_max_hf", dict(PSVIT_BASE, fibvid_token_pool=[{"after": 1, "kind": "max"}],
                                   fibvid_share_spatial=[1], fibvid_share_temporal=[3]), fib("exclude"), fib("zero")),
        ("tiny_psvit_conv_hf", dict(PSVIT_BASE, fibvid_token_pool=[{"after": 0, "kind": "conv"},
                                                                   {"after": 2, "kind": "avg"}],
                                    fibvid_share_spatial=[2], fibvid_share_temporal=[2]), DENSE, fib("exclude")),
    ]


def attn_config(att):
    """fibvid's config attention object for the settings dict @att."""
    return {k: (bool(v) if k == "shuffle" else v) for k, v in att.items()}


def make_psvit(out):
    """The PSViT models (Hugging Face directories) and their forward fixtures: 32x32 (4x4 grid) and 48x40 (6x5:
    odd edges, embeddings resized), every activation the hook sees."""
    written = []
    for k, (name, cfg, sp, tp) in enumerate(psvit_models()):
        weights = random_weights(cfg, len(TINY_LABELS), PSVIT_SEED + k)
        write_model(out, cfg, weights, name, {"fibvid_spatial_attention": attn_config(sp),
                                              "fibvid_temporal_attention": attn_config(tp)})
        written += [os.path.join(name, f) for f in ("config.json", "model.safetensors", "preprocessor_config.json")]
        ref = Ref(cfg, weights)
        keep = None  # everything
        for fx, (T, H, W), seed in (("", (4, 32, 32), 11), ("_48x40", (4, 48, 40), 12)):
            frames = gen_input(seed, T * 3 * H * W).reshape(T, 3, H, W)
            fname = "ref_" + name[5:-3] + fx
            make_fixture(os.path.join(out, fname + ".safetensors"), ref, cfg, frames, sp, tp, keep, seed, False,
                         "PSViT %s at %dx%d: pooling %s, sharing spatial %s, temporal %s" % (
                             name, H, W, cfg["fibvid_token_pool"], cfg["fibvid_share_spatial"],
                             cfg["fibvid_share_temporal"]), name)
            written.append(fname + ".safetensors")
    return written


def make_grads(out, cfg, weights):
    taps = castling_taps(cfg, CASTLING_TAPS_SEED)
    wc = dict(weights, **taps)
    # a model fine-tuned into castling starts with zero taps (fibvid gives them a home in training)
    wz = dict(weights, **{n: np.zeros_like(a) for n, a in taps.items()})
    linear = [
        # not 32x32: over 5 tokens SimA's column l1 norm is ill-conditioned in float32 (PyTorch's own float32
        # autograd misses test_grad.c's bounds there by 1.5-2.5x on three seed pairs, and by 0.2-0.3x at
        # 64x48 and 96x64; measured with the float32 Ref against this float64 one)
        ("grad_sima_64x48", 6, 64, 48, SIMA, SIMA, "sima, 64x48x6 (quadratic order: 13 and 6 tokens < head_dim 16)",
         weights, "tiny_hf", 0.0),
        ("grad_sima_96x64", 4, 96, 64, SIMA, SIMA, "sima, 96x64x4 (spatial 25 tokens: linear order)", weights,
         "tiny_hf", 0.0),
        ("grad_castling", 4, 32, 32, CASTLING, CASTLING, "castling with taps, 32x32x4", wc, "tiny_castling_hf", 0.0),
        ("grad_castling_96x64", 4, 96, 64, CASTLING, CASTLING, "castling with taps, 96x64x4", wc,
         "tiny_castling_hf", 0.0),
        ("grad_castling_aux", 4, 32, 32, CASTLING, CASTLING,
         "castling with taps and the auxiliary branch at lambda 0.5, 32x32x4", wc, "tiny_castling_hf", 0.5),
        ("grad_castling_notaps", 4, 32, 32, CASTLING, dict(SIMA), "tiny_hf fine-tuned into castling spatial "
         "(zero taps) and sima temporal, 32x32x4", wz, "tiny_hf", 0.0),
    ]
    total = 0
    for name, T, H, W, sp, tp, desc, wts, model, lam in linear:
        path = os.path.join(out, name + ".safetensors")
        if name == "grad_castling_notaps":  # the temporal attention is sima: it has no taps
            wts = {n: a for n, a in wts.items() if "temporal_attention.attention.dwconv" not in n}
        make_grad_fixture(path, cfg, wts, T, H, W, [21, 22], sp, tp, desc, model, lam)
        total += os.path.getsize(path)
    # PSViT: gradients through the pooling and into the layers whose weights are shared
    psvit = psvit_models()
    for k, (model, pcfg, sp, tp) in enumerate(psvit):
        pw = random_weights(pcfg, len(TINY_LABELS), PSVIT_SEED + k)
        for fx, (T, H, W) in (("", (4, 32, 32)), ("_48x40", (4, 48, 40))):
            path = os.path.join(out, "grad_" + model[5:-3] + fx + ".safetensors")
            make_grad_fixture(path, pcfg, pw, T, H, W, [21, 22], sp, tp, "PSViT %s at %dx%d" % (model, H, W), model)
            total += os.path.getsize(path)
    linear += [None] * (2 * len(psvit))  # counted below
    cases = [
        ("grad_dense", 4, 32, 32, DENSE, DENSE, "dense, 32x32x4"),
        ("grad_fib_zero", 4, 32, 32, fib("zero"), fib("zero"), "spatial and temporal fib zero, 32x32x4"),
        ("grad_fib_exclude", 4, 32, 32, fib("exclude"), fib("exclude"), "spatial and temporal fib exclude, 32x32x4"),
        # 4x3 = 12 patches (position embeddings resized 2x2 -> 4x3) and 6 frames (time embeddings 4 -> 6)
        ("grad_dense_64x48", 6, 64, 48, DENSE, DENSE, "dense, 64x48x6"),
        ("grad_fib_zero_64x48", 6, 64, 48, fib("zero"), fib("zero"), "spatial and temporal fib zero, 64x48x6"),
        ("grad_fib_exclude_64x48", 6, 64, 48, fib("exclude"), fib("exclude"),
         "spatial and temporal fib exclude, 64x48x6"),
    ]
    for name, T, H, W, sp, tp, desc in cases:
        path = os.path.join(out, name + ".safetensors")
        make_grad_fixture(path, cfg, weights, T, H, W, [21, 22], sp, tp, desc)
        total += os.path.getsize(path)
    print("%d gradient fixtures written to %s: %.1f KB" % (len(cases) + len(linear), out, total / 1024))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data"))
    ap.add_argument("--check-offsets", default="/work/shared/reference/fibottention_offsets_N196_h12.json",
                    help="reference offsets JSON to cross-check against when present")
    ap.add_argument("--no-self-check", action="store_true",
                    help="skip the comparison with the slow loop-based implementation")
    ap.add_argument("--grads", action="store_true",
                    help="write only the gradient fixtures tests/data/grad_*.safetensors (autograd, float64)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    check_offsets_against_reference(args.check_offsets)

    cfg = dict(TINY_CONFIG)
    weights = random_weights(cfg, len(TINY_LABELS), WEIGHT_SEED)
    if args.grads:
        make_grads(out, cfg, weights)
        return
    write_model(out, cfg, weights)
    ref = Ref(cfg, weights)

    ALL = ("embeddings", "layer.0", "layer.1", "final_norm", "logits")
    LAST = ("layer.1", "final_norm", "logits")
    OUT = ("final_norm", "logits")

    def frames_for(seed, T, H, W):
        return gen_input(seed, T * 3 * H * W).reshape(T, 3, H, W)

    # 32x32, 4 frames: N = 4 patches per frame
    f32 = frames_for(1, 4, 32, 32)
    cases = [
        ("ref_dense", f32, 1, DENSE, DENSE, ALL, True, "dense spatial and temporal"),
        ("ref_fib_spatial_zero", f32, 1, fib("zero"), DENSE, ALL, False,
         "spatial fib modified/zero (reference-repo checkpoint), temporal dense"),
        ("ref_fib_st_zero", f32, 1, fib("zero"), fib("zero"), ALL, False, "spatial and temporal fib zero"),
        ("ref_fib_st_exclude", f32, 1, fib("exclude"), fib("exclude"), ALL, False,
         "spatial and temporal fib exclude"),
    ]
    # 96x64 (6x4 = 24 patches per frame): position embeddings interpolated 2x2 -> 6x4
    f96 = frames_for(2, 4, 96, 64)
    cases += [
        ("ref_dense_96x64", f96, 2, DENSE, DENSE, ("embeddings",) + LAST, False, "dense at 96x64"),
        ("ref_fib_spatial_zero_96x64", f96, 2, fib("zero"), DENSE, OUT, False,
         "spatial fib modified/zero at 96x64, temporal dense"),
        ("ref_fib_st_zero_96x64", f96, 2, fib("zero"), fib("zero"), LAST, False,
         "spatial and temporal fib zero at 96x64"),
        ("ref_fib_st_exclude_96x64", f96, 2, fib("exclude"), fib("exclude"), LAST, False,
         "spatial and temporal fib exclude at 96x64"),
        ("ref_fib_original_96x64", f96, 2, fib("zero", "original", 2, 12, 0),
         fib("exclude", "original", 1, 3, 0), OUT, False,
         "original variant, explicit windows, no shuffle: spatial zero, temporal exclude at 96x64"),
    ]
    # 6 frames: time embeddings interpolated 4 -> 6
    f6 = frames_for(3, 6, 32, 32)
    cases += [
        ("ref_dense_t6", f6, 3, DENSE, DENSE, ALL, False, "dense with 6 frames"),
        ("ref_fib_st_exclude_t6", f6, 3, fib("zero"), fib("exclude"), LAST, False,
         "spatial fib zero, temporal fib exclude with 6 frames"),
    ]
    # SimA and Castling (SPEC 4): 32x32 has 5 spatial and 4 temporal tokens (< head_dim 16: the quadratic
    # order), 96x64 25 spatial tokens (the linear order). tiny_castling_hf is tiny_hf plus non-zero taps and a
    # config that asks for castling in both attentions; tiny_hf run as castling has no taps (zero).
    wc = dict(weights, **castling_taps(cfg, CASTLING_TAPS_SEED))
    write_model(out, cfg, wc, "tiny_castling_hf", {"fibvid_spatial_attention": {"kind": "castling"},
                                                   "fibvid_temporal_attention": {"kind": "castling"}})
    refc = Ref(cfg, wc)
    linear = [
        ("ref_sima_st", f32, 1, SIMA, SIMA, ALL, False, "spatial and temporal sima", "tiny_hf", ref),
        ("ref_sima_st_96x64", f96, 2, SIMA, SIMA, LAST, False, "spatial and temporal sima at 96x64", "tiny_hf", ref),
        ("ref_castling_st", f32, 1, CASTLING, CASTLING, ALL, False, "spatial and temporal castling with taps",
         "tiny_castling_hf", refc),
        ("ref_castling_st_96x64", f96, 2, CASTLING, CASTLING, LAST, False,
         "spatial and temporal castling with taps at 96x64", "tiny_castling_hf", refc),
        ("ref_castling_notaps", f32, 1, CASTLING, CASTLING, OUT, False,
         "castling on a model without taps (zero taps)", "tiny_hf", ref),
        ("ref_mixed_fib_sima", f32, 1, fib("zero"), SIMA, ALL, False, "spatial fib zero, temporal sima",
         "tiny_hf", ref),
        ("ref_mixed_castling_fib_96x64", f96, 2, CASTLING, fib("exclude"), LAST, False,
         "spatial castling with taps, temporal fib exclude at 96x64", "tiny_castling_hf", refc),
        ("ref_mixed_sima_castling_t6", f6, 3, SIMA, CASTLING, LAST, False,
         "spatial sima, temporal castling with taps, 6 frames", "tiny_castling_hf", refc),
    ]
    if not args.no_self_check:
        for name, frames, seed, sp, tp, keep, store, desc in cases:
            if name in ("ref_dense", "ref_fib_st_zero", "ref_fib_st_exclude", "ref_dense_96x64",
                        "ref_fib_st_zero_96x64", "ref_fib_original_96x64", "ref_fib_st_exclude_t6"):
                self_check(cfg, weights, ref, frames, sp, tp, name)
        for name, frames, seed, sp, tp, keep, store, desc, model, r in linear:
            if name in ("ref_sima_st", "ref_sima_st_96x64", "ref_castling_st", "ref_mixed_castling_fib_96x64"):
                self_check(cfg, wc if r is refc else weights, r, frames, sp, tp, name)
    for name, frames, seed, sp, tp, keep, store, desc in cases:
        make_fixture(os.path.join(out, name + ".safetensors"), ref, cfg, frames, sp, tp, keep, seed, store, desc)
    for name, frames, seed, sp, tp, keep, store, desc, model, r in linear:
        make_fixture(os.path.join(out, name + ".safetensors"), r, cfg, frames, sp, tp, keep, seed, store, desc,
                     model)
    make_clip(out, ref, cfg)
    psvit = make_psvit(out)

    written = [os.path.join(d, f) for d in ("tiny_hf", "tiny_castling_hf")
               for f in ("config.json", "model.safetensors", "preprocessor_config.json")]
    written += [c[0] + ".safetensors" for c in cases + linear] + ["clip_ffv1.mkv", "ref_clip.safetensors"] + psvit
    total = sum(os.path.getsize(os.path.join(out, f)) for f in written)
    print("%d files written to %s: %.1f KB" % (len(written), out, total / 1024))


if __name__ == "__main__":
    main()
