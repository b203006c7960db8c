#!/usr/bin/env python3
"""Reference pixels for fibvid's resize (tests/test_preprocess.c, test_resize_reference).

Writes tests/data/resize_ref.safetensors: a small RGB picture and, for a downscale and an upscale of its
shorter side, the centre crop of the picture resized by an independent numpy implementation of the
resize fibvid documents (SPEC section 2, "bilinear"; src/video/video.c converts with libswscale's
SWS_BILINEAR):
  - separable, one axis after the other, in floating point, rounded once at the end (the fixture keeps
    the unrounded values as F16, exact to 1/8 of a level for values below 256);
  - half-pixel centres (align_corners=False): output sample i sits at input coordinate (i + 0.5) * in/out;
  - a triangle (tent) kernel; when downscaling it is widened by the scale factor (antialiased, like
    PIL's BILINEAR and torch's interpolate(antialias=True)), when upscaling it is plain 2-tap bilinear;
  - samples outside the picture repeat the edge pixel (the crop keeps away from the edges anyway);
  - the resized size: shorter side S, longer side int(long * S / short + 0.5) (MMAction2 Resize); the
    centre crop starts at floor((L - c) / 2) on both axes.
With torch installed it also checks the resize against torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=True) away from the edges.

Tensors (all F16, (H, W, 3) RGB): "source" (28, 36, 3); "down" the crop 18 of short side 20 (26x20);
"up" the crop 30 of short side 37 (48x37). Metadata records the sizes.

Usage: /usr/bin/python3 scripts/make_resize_fixture.py [--out tests/data]
"""
import argparse
import json
import math
import os
import struct

import numpy as np

SRC_W, SRC_H = 36, 28
CASES = {"down": (20, 18), "up": (37, 30)}  # name: (short side, crop)


def source_picture():
    """Smooth colour ramps, sharp block edges and fine texture: bilinear, bicubic and nearest-neighbour
    resizes of it differ by many levels."""
    y, x = np.mgrid[0:SRC_H, 0:SRC_W].astype(np.float64)
    r = 40 + 170 * ((x // 6 + y // 5) % 2) + 3 * ((x * 3 + y * 5) % 8)
    g = 128 + 90 * np.sin(x * 0.8) * np.cos(y * 0.55)
    b = 20 + 200 * (x / (SRC_W - 1)) * (((x + 2 * y) // 4) % 2)
    pic = np.stack([r, g, b], axis=-1)
    return np.clip(np.round(pic), 0, 255)


def resized_size(w, h, s):
    if w <= h:
        return s, (2 * h * s + w) // (2 * w)
    return (2 * w * s + h) // (2 * h), s


def resize_axis(a, out, axis):
    """Resize array @a along @axis to @out samples: tent kernel at half-pixel centres, widened by the
    scale factor when downscaling, edge pixels repeated."""
    n = a.shape[axis]
    scale = n / out
    support = max(scale, 1.0)
    w = np.zeros((out, n))
    for i in range(out):
        centre = (i + 0.5) * scale  # in input pixel units, pixel j covers [j, j + 1)
        lo = int(math.floor(centre - support)) - 1
        hi = int(math.ceil(centre + support)) + 1
        for j in range(lo, hi + 1):
            t = 1.0 - abs((j + 0.5 - centre) / support)
            if t > 0:
                w[i, min(max(j, 0), n - 1)] += t
        w[i] /= w[i].sum()
    return np.moveaxis(np.tensordot(w, np.moveaxis(a, axis, 0), axes=(1, 0)), 0, axis)


def resize(pic, ow, oh):
    return resize_axis(resize_axis(pic, oh, 0), ow, 1)


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": {str(k): str(v) for k, v in sorted(metadata.items())}}
    blobs, off = [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f2").tobytes()
        header[name] = {"dtype": "F16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
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


def torch_check(pic, ow, oh, name):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch not installed: cross-check skipped")
        return
    t = torch.from_numpy(pic).permute(2, 0, 1)[None]
    o = F.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)[0]
    o = o.permute(1, 2, 0).numpy()
    mine = resize(pic, ow, oh)
    m = 3  # torch renormalises at the edges instead of repeating them: compare the inside
    d = np.abs(o[m:-m, m:-m] - mine[m:-m, m:-m]).max()
    print("%s: numpy vs torch antialiased bilinear, inside: max abs diff %.2e" % (name, d))
    assert d < 1e-6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data"))
    args = ap.parse_args()
    pic = source_picture()
    tensors = {"source": pic}
    meta = {"source_w": SRC_W, "source_h": SRC_H, "script": "scripts/make_resize_fixture.py"}
    for name, (short, crop) in CASES.items():
        rw, rh = resized_size(SRC_W, SRC_H, short)
        full = resize(pic, rw, rh)
        torch_check(pic, rw, rh, name)
        x0, y0 = (rw - crop) // 2, (rh - crop) // 2
        tensors[name] = full[y0:y0 + crop, x0:x0 + crop]
        meta.update({name + "_short": short, name + "_crop": crop, name + "_resized": "%dx%d" % (rw, rh)})
        print("%s: %dx%d -> %dx%d, crop %d at (%d, %d)" % (name, SRC_W, SRC_H, rw, rh, crop, x0, y0))
    path = os.path.join(args.out, "resize_ref.safetensors")
    write_safetensors(path, tensors, meta)
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
