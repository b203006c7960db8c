#!/usr/bin/env python3
"""Reference vectors for fibvid's Fibottention masks (tests/test_fibottention.c).

Writes tests/data/fib_vectors.json from CPython's own `random` module and an independent Python
implementation of the reference code's offset rules (SPEC section 3):
  - getrandbits: random.seed(d); [getrandbits(32) x 16] for depth d = 0..31, plus a few other seeds
    (multi-word, negative) and bit widths (1..64);
  - shuffle: random.seed(d); random.shuffle(list(range(L))) for d = 0..31, L = 1..16;
  - offsets: per layer, per head slot offset lists (duplicates kept, as get_fibonacci returns them)
    for assorted N, h, windows and both variants, with and without the per-layer shuffle.
Also copies the reference output shared/reference/fibottention_offsets_N196_h12.json into tests/data.

Usage: python3 scripts/make_fib_vectors.py [--out tests/data] [--shared ../shared]
Only the standard library (random, math, json) is used.
"""
import argparse
import json
import math
import os
import random
import shutil


def head_offsets(i, h, wmin, wmax, modified):
    """Offsets of head i (1-based) of h, as the reference's generate_head_indices/get_fibonacci."""
    phi = (1 + math.sqrt(5)) / 2
    a = int(math.floor(math.floor(i * phi) * phi))
    b = int(math.floor(math.floor(i * phi) * phi ** 2))
    w = wmax if h == 1 else wmin + int((wmax - wmin) / (h - 1) * (i - 1))
    if modified:
        bm = b - a
        a, b = a - bm, bm
    seq = [a, b]
    while seq[-1] <= w:
        seq.append(seq[-1] + seq[-2])
    return seq[:-1]


def layer_offsets(depth, h, wmin, wmax, modified, shuffle):
    heads = [head_offsets(i, h, wmin, wmax, modified) for i in range(1, h + 1)]
    if shuffle:
        random.seed(depth)
        heads = heads[:]
        random.shuffle(heads)
    return heads


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=os.path.join(here, '..', 'tests', 'data'))
    ap.add_argument('--shared', default=os.path.join(here, '..', '..', 'shared'))
    args = ap.parse_args()

    getrandbits = []
    for seed in list(range(32)) + [2**32 - 1, 2**32, 2**32 + 5, 2**40 + 12345, 2**63 - 1, -7]:
        random.seed(seed)
        getrandbits.append({'seed': seed, 'k': 32, 'values': [random.getrandbits(32) for _ in range(16)]})
    for k in (1, 2, 3, 7, 16, 31, 33, 48, 63, 64):
        random.seed(1234)
        # values >= 2^63 do not fit a JSON parser's int64: written as decimal strings
        vals = [random.getrandbits(k) for _ in range(8)]
        getrandbits.append({'seed': 1234, 'k': k, 'values': [v if v < 2**63 else str(v) for v in vals]})

    randbelow = []
    for n in (1, 2, 3, 5, 6, 7, 12, 100, 2**31 - 1, 2**32 + 1):
        random.seed(99)
        randbelow.append({'seed': 99, 'n': n, 'values': [random._inst._randbelow(n) for _ in range(8)]})

    shuffle = []
    for d in range(32):
        perms = []
        for length in range(1, 17):
            x = list(range(length))
            random.seed(d)
            random.shuffle(x)
            perms.append(x)
        shuffle.append({'seed': d, 'perms': perms})

    cases = []
    # (N tokens without cls, h, wmin, wmax); wmax None: N // 3 (spatial reference default)
    shapes = [(16, 12, 5, None), (50, 12, 5, None), (100, 12, 5, None), (784, 12, 5, None),
              (196, 1, 5, None), (196, 3, 5, None), (196, 6, 5, None), (4, 12, 5, None), (4, 3, 5, None),
              (3136, 12, 5, None), (196, 16, 5, None), (8, 12, 1, 7), (16, 12, 1, 15), (8, 1, 1, 7),
              (196, 12, 2, 100), (196, 5, 30, 10)]
    for (n, h, wmin, wmax) in shapes:
        wmax_v = n // 3 if wmax is None else wmax
        for modified in (1, 0):
            for shuf in (1, 0):
                depths = range(12) if shuf else range(1)
                cases.append({'N': n, 'h': h, 'wmin': wmin, 'wmax': wmax_v, 'modified': modified,
                              'shuffle': shuf,
                              'layers': [layer_offsets(d, h, wmin, wmax_v, modified, shuf) for d in depths]})

    out = {
        'source': 'scripts/make_fib_vectors.py (CPython %s random module; offsets per SPEC section 3)'
                  % '.'.join(map(str, __import__('sys').version_info[:3])),
        'getrandbits': getrandbits,
        'randbelow': randbelow,
        'shuffle': shuffle,
        'offsets': cases,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'fib_vectors.json')
    with open(path, 'w') as f:
        json.dump(out, f, separators=(',', ':'))
        f.write('\n')
    print('wrote', path)

    ref = os.path.join(args.shared, 'reference', 'fibottention_offsets_N196_h12.json')
    if os.path.exists(ref):
        # cross-check the independent implementation against the reference code's own output
        data = json.load(open(ref))
        for key, modified in (('N196_h12_mod', 1), ('N196_h12_orig', 0)):
            mine = [layer_offsets(d, 12, 5, 196 // 3, modified, 1) for d in range(len(data[key]))]
            assert mine == data[key], key
        dst = os.path.join(args.out, 'fib_offsets_N196_h12.json')
        shutil.copyfile(ref, dst)
        print('copied', ref, '->', dst, '(matches this script)')
    else:
        print('note: %s not found; fib_offsets_N196_h12.json not refreshed' % ref)


if __name__ == '__main__':
    main()
