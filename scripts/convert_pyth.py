#!/usr/bin/env python3
"""Convert an original TimeSformer / Fibottention-repo `.pyth` checkpoint to a fibvid model.

The checkpoint is a PySlowFast dict whose `model_state` holds the VisionTransformer state dict with keys
prefixed `model.` (`module.` too when saved from DistributedDataParallel). Names map 1:1 onto the
Hugging Face TimeSformer names with no transposes (SPEC section 1). The architecture is read from the
tensor shapes; what the shapes cannot tell (heads, preprocessing, sampling, attention kinds) comes from
the flags. Output: a fibvid single file (default) or a Hugging Face directory (--hf-dir), both described
in models/README.md.

    /usr/bin/python3 scripts/convert_pyth.py TimeSformer_divST_8x32_224_K400.pyth \
        models/timesformer-base-k400.safetensors --labels kinetics400_labels.txt

Needs torch (to unpickle the checkpoint) and numpy.
"""
import argparse
import json
import math
import os
import re
import struct
import sys
import tempfile

import numpy as np

FORMAT = "fibvid"
FORMAT_VERSION = "1"

# original name (after the `model.` prefix) -> HF name; {i} is the block index
_BLOCK_MAP = [
    ("norm1", "layernorm_before"),
    ("attn.qkv", "attention.attention.qkv"),
    ("attn.proj", "attention.output.dense"),
    ("temporal_norm1", "temporal_layernorm"),
    ("temporal_attn.qkv", "temporal_attention.attention.qkv"),
    ("temporal_attn.proj", "temporal_attention.output.dense"),
    ("temporal_fc", "temporal_dense"),
    ("norm2", "layernorm_after"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
]
_TOP_MAP = {
    "cls_token": "timesformer.embeddings.cls_token",
    "pos_embed": "timesformer.embeddings.position_embeddings",
    "time_embed": "timesformer.embeddings.time_embeddings",
    "patch_embed.proj.weight": "timesformer.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "timesformer.embeddings.patch_embeddings.projection.bias",
    "norm.weight": "timesformer.layernorm.weight",
    "norm.bias": "timesformer.layernorm.bias",
    "head.weight": "classifier.weight",
    "head.bias": "classifier.bias",
}


class ConvertError(Exception):
    pass


def map_name(name):
    """HF name of an original-repo parameter name (prefix already stripped), or None."""
    if name in _TOP_MAP:
        return _TOP_MAP[name]
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
        i, mod, kind = m.groups()
        for src, dst in _BLOCK_MAP:
            if mod == src:
                return f"timesformer.encoder.layer.{int(i)}.{dst}.{kind}"
    return None


def expected_tensors(cfg):
    """(name, shape) of every tensor of a fibvid/HF TimeSformer, in the order fibvid visits them."""
    D, I, C, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_channels"], cfg["patch_size"]
    P0 = (cfg["image_size"] // p) ** 2
    out = [
        ("timesformer.embeddings.cls_token", (1, 1, D)),
        ("timesformer.embeddings.position_embeddings", (1, 1 + P0, D)),
        ("timesformer.embeddings.time_embeddings", (1, cfg["num_frames"], D)),
        ("timesformer.embeddings.patch_embeddings.projection.weight", (D, C, p, p)),
        ("timesformer.embeddings.patch_embeddings.projection.bias", (D,)),
    ]
    for i in range(cfg["num_hidden_layers"]):
        pre = f"timesformer.encoder.layer.{i}."
        out.append((pre + "attention.attention.qkv.weight", (3 * D, D)))
        if cfg["qkv_bias"]:
            out.append((pre + "attention.attention.qkv.bias", (3 * D,)))
        out += [
            (pre + "attention.output.dense.weight", (D, D)),
            (pre + "attention.output.dense.bias", (D,)),
            (pre + "intermediate.dense.weight", (I, D)),
            (pre + "intermediate.dense.bias", (I,)),
            (pre + "output.dense.weight", (D, I)),
            (pre + "output.dense.bias", (D,)),
            (pre + "layernorm_before.weight", (D,)),
            (pre + "layernorm_before.bias", (D,)),
            (pre + "layernorm_after.weight", (D,)),
            (pre + "layernorm_after.bias", (D,)),
            (pre + "temporal_layernorm.weight", (D,)),
            (pre + "temporal_layernorm.bias", (D,)),
            (pre + "temporal_attention.attention.qkv.weight", (3 * D, D)),
        ]
        if cfg["qkv_bias"]:
            out.append((pre + "temporal_attention.attention.qkv.bias", (3 * D,)))
        out += [
            (pre + "temporal_attention.output.dense.weight", (D, D)),
            (pre + "temporal_attention.output.dense.bias", (D,)),
            (pre + "temporal_dense.weight", (D, D)),
            (pre + "temporal_dense.bias", (D,)),
        ]
    out += [
        ("timesformer.layernorm.weight", (D,)),
        ("timesformer.layernorm.bias", (D,)),
        ("classifier.weight", (cfg["num_labels"], D)),
        ("classifier.bias", (cfg["num_labels"],)),
    ]
    return out


def load_state_dict(path):
    import torch  # only needed to unpickle

    try:
        ckpt = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unpickling failure as one line
        raise ConvertError(f"{path}: cannot load the checkpoint: {e}")
    sd = ckpt
    if isinstance(ckpt, dict):
        for key in ("model_state", "state_dict", "model"):
            if key in ckpt and isinstance(ckpt[key], dict):
                sd = ckpt[key]
                break
    if not isinstance(sd, dict) or not sd:
        raise ConvertError(f"{path}: no state dict found (expected a dict with 'model_state')")
    out = {}
    for k, v in sd.items():
        if not hasattr(v, "detach"):
            raise ConvertError(f"{path}: entry {k!r} is not a tensor")
        name = k
        for prefix in ("module.", "model."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = v.detach().to(torch.float32).contiguous().numpy()
    return out


def infer_config(sd, args, path):
    """Config from the tensor shapes, checked against the flags that were given."""
    def need(name):
        if name not in sd:
            raise ConvertError(f"{path}: missing tensor 'model.{name}' (not a TimeSformer checkpoint?)")
        return sd[name].shape

    D = need("cls_token")[-1]
    pw = need("patch_embed.proj.weight")
    patch = pw[2]
    P0 = need("pos_embed")[1] - 1
    grid = int(round(math.sqrt(P0)))
    if grid * grid != P0 or pw[3] != patch:
        raise ConvertError(f"{path}: pos_embed has {P0} patch positions: not a square grid")
    blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r"blocks\.(\d+)\.", k)] if m})
    if not blocks or blocks != list(range(len(blocks))):
        raise ConvertError(f"{path}: transformer blocks are missing or not numbered 0..L-1")
    cfg = {
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": pw[1],
        "num_frames": need("time_embed")[1],
        "hidden_size": D,
        "num_hidden_layers": len(blocks),
        "num_attention_heads": args.num_heads or max(1, D // 64),
        "intermediate_size": need("blocks.0.mlp.fc1.weight")[0],
        "hidden_act": "gelu",
        "layer_norm_eps": args.layer_norm_eps,
        "qkv_bias": "blocks.0.attn.qkv.bias" in sd,
        "attention_type": "divided_space_time",
        "num_labels": need("head.weight")[0],
    }
    if args.image_size and args.image_size != cfg["image_size"]:
        raise ConvertError(f"{path}: --image-size {args.image_size} but pos_embed says {cfg['image_size']}")
    if args.num_frames and args.num_frames != cfg["num_frames"]:
        raise ConvertError(f"{path}: --num-frames {args.num_frames} but time_embed says {cfg['num_frames']}")
    if D % cfg["num_attention_heads"]:
        raise ConvertError(f"{path}: hidden size {D} is not a multiple of --num-heads {cfg['num_attention_heads']}")
    return {k: (int(v) if isinstance(v, (np.integer, int)) and not isinstance(v, bool) else v)
            for k, v in cfg.items()}


def attn_settings(kind, args, wmin, wmax):
    return {"kind": kind, "variant": args.fib_variant, "semantics": args.fib_semantics,
            "wmin": wmin, "wmax": wmax, "shuffle": not args.no_fib_shuffle}


def full_config(cfg, labels, args):
    c = {"architectures": ["TimesformerForVideoClassification"], "model_type": "timesformer"}
    c.update(cfg)
    c["id2label"] = {str(i): n for i, n in enumerate(labels)}
    c["label2id"] = {n: i for i, n in enumerate(labels)}
    c["image_mean"] = args.mean
    c["image_std"] = args.std
    c["fibvid_sampling"] = args.sampling
    c["fibvid_sampling_rate"] = args.sampling_rate
    c["fibvid_short_side"] = args.short_side
    c["fibvid_spatial_attention"] = attn_settings("fib" if args.fib_spatial else "dense", args,
                                                  args.fib_wmin, args.fib_wmax)
    c["fibvid_temporal_attention"] = attn_settings("fib" if args.fib_temporal else "dense", args,
                                                   args.fib_temporal_wmin, args.fib_temporal_wmax)
    return c


def write_safetensors(path, tensors, metadata):
    """F32 safetensors, header padded with spaces to 8 bytes, written to a temp file then renamed."""
    header = {"__metadata__": metadata} if metadata else {}
    pos = 0
    for name, arr in tensors:
        n = arr.size * 4
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [pos, pos + n]}
        pos += n
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".convert-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for _, arr in tensors:
                f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def convert(args):
    sd = load_state_dict(args.checkpoint)
    ignore = re.compile(args.ignore) if args.ignore else None
    cfg = infer_config(sd, args, args.checkpoint)

    mapped = {}
    unmapped = []
    for k, v in sd.items():
        if ignore and ignore.fullmatch(k):
            continue
        hf = map_name(k)
        if hf is None:
            unmapped.append(k)
        else:
            mapped[hf] = v
    if unmapped:
        raise ConvertError(f"{args.checkpoint}: {len(unmapped)} unmapped key(s): "
                           + ", ".join("model." + k for k in unmapped[:8])
                           + (" ..." if len(unmapped) > 8 else "") + " (skip them with --ignore REGEX)")
    tensors = []
    missing = []
    for name, shape in expected_tensors(cfg):
        if name not in mapped:
            missing.append(name)
            continue
        arr = mapped.pop(name)
        if tuple(arr.shape) != tuple(shape):
            raise ConvertError(f"{args.checkpoint}: {name}: shape {list(arr.shape)}, expected {list(shape)}")
        tensors.append((name, arr))
    if missing:
        raise ConvertError(f"{args.checkpoint}: {len(missing)} missing tensor(s): " + ", ".join(missing[:8])
                           + (" ..." if len(missing) > 8 else ""))
    if mapped:  # only qkv biases of a mixed checkpoint can get here
        raise ConvertError(f"{args.checkpoint}: unexpected tensor(s): " + ", ".join(sorted(mapped)[:8]))

    L = cfg["num_labels"]
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = [ln.rstrip("\r\n") for ln in f if ln.strip()]
        if len(labels) != L:
            raise ConvertError(f"{args.labels}: {len(labels)} labels, but the classifier has {L} classes")
    else:
        labels = [f"class_{i}" for i in range(L)]
    config = full_config(cfg, labels, args)
    text = json.dumps(config, indent=2, ensure_ascii=False)

    if args.hf_dir:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "config.json"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        write_safetensors(os.path.join(args.output, "model.safetensors"), tensors, {"format": "pt"})
    else:
        write_safetensors(args.output, tensors,
                          {"format": FORMAT, "format_version": FORMAT_VERSION, "config": text})
    nparams = sum(a.size for _, a in tensors)
    print(f"{args.output}: {len(tensors)} tensors, {nparams} parameters, {L} labels, "
          f"D={cfg['hidden_size']} layers={cfg['num_hidden_layers']} heads={cfg['num_attention_heads']} "
          f"frames={cfg['num_frames']} size={cfg['image_size']}", file=sys.stderr)


def floats3(s):
    v = [float(x) for x in s.split(",")]
    if len(v) == 1:
        v = v * 3
    if len(v) != 3:
        raise argparse.ArgumentTypeError("give 1 or 3 comma-separated numbers")
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help=".pyth checkpoint (PySlowFast dict with model_state)")
    ap.add_argument("output", help="output .safetensors (fibvid single file) or directory with --hf-dir")
    ap.add_argument("--hf-dir", action="store_true", help="write a HF directory (config.json + model.safetensors)")
    ap.add_argument("--labels", help="text file, one class name per line, in class order")
    ap.add_argument("--num-heads", type=int, default=0, help="attention heads (default: hidden_size / 64)")
    ap.add_argument("--image-size", type=int, default=0, help="check against pos_embed (default: inferred)")
    ap.add_argument("--num-frames", type=int, default=0, help="check against time_embed (default: inferred)")
    ap.add_argument("--layer-norm-eps", type=float, default=1e-6, help="default 1e-6")
    ap.add_argument("--mean", type=floats3, default=[0.45] * 3, help="image_mean (default 0.45)")
    ap.add_argument("--std", type=floats3, default=[0.225] * 3, help="image_std (default 0.225)")
    ap.add_argument("--sampling", choices=["uniform", "dense"], default="dense",
                    help="frame sampling recorded in the config (default dense: the TimeSformer recipe)")
    ap.add_argument("--sampling-rate", type=int, default=32, help="dense stride (default 32, the 8x32 recipe)")
    ap.add_argument("--short-side", type=int, default=0, help="resize short side (default 0 = image size)")
    ap.add_argument("--fib-spatial", action="store_true", help="record Fibottention for spatial attention")
    ap.add_argument("--fib-temporal", action="store_true", help="record Fibottention for temporal attention")
    ap.add_argument("--fib-variant", choices=["modified", "original"], default="modified")
    ap.add_argument("--fib-semantics", choices=["zero", "exclude"], default="zero")
    ap.add_argument("--fib-wmin", type=int, default=0, help="spatial smallest window (0 = default)")
    ap.add_argument("--fib-wmax", type=int, default=0, help="spatial largest window (0 = default)")
    ap.add_argument("--fib-temporal-wmin", type=int, default=0)
    ap.add_argument("--fib-temporal-wmax", type=int, default=0)
    ap.add_argument("--no-fib-shuffle", action="store_true", help="no per-layer head shuffle")
    ap.add_argument("--ignore", help="regex of checkpoint keys (without 'model.') to drop")
    args = ap.parse_args(argv)
    try:
        convert(args)
    except (ConvertError, OSError) as e:
        print(f"convert_pyth: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
