"""What a hostile model file costs to open: peak memory and time of
``crnn.load`` on crafted files, each in a fresh process, against a normal
load (docs/user_guide/saving.md; issue 24).

    python benches/hostile_files.py [--out results.md]

Each case is written to a temporary folder, then loaded by a child process
that reports its peak resident memory (VmHWM, Linux; it includes the
interpreter, numpy and crnn: about 200 MB before anything is read), the wall
time of the load, and how it ended.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
import zlib

import numpy as np

CHILD = r"""
import sys, time
import crnn


def peak_kb():
    # VmHWM: this process's own peak (ru_maxrss can carry the parent's
    # across fork + exec)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
t0 = time.perf_counter()
try:
    crnn.load(sys.argv[1])
    result = "loaded"
except Exception as exc:
    result = f"{type(exc).__name__}: {str(exc).split(': ', 1)[-1][:70]}"
wall = time.perf_counter() - t0
print(repr((result, wall, peak_kb())))
"""


def _base(tmp):
    import crnn
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 10, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = crnn.RNNRegressor(cell="lstm", hidden_size=64, max_iter=1, random_state=0).fit(
            X, X.sum(axis=(1, 2)))
    path = os.path.join(tmp, "normal.crnn")
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        man = json.loads(zf.read("model.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    return path, man, members


def _write(path, text, members, compress=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", text, compress_type=compress)
        for n, b in members.items():
            zf.writestr(n, b)
    return path


def _with_param(man, body):
    m = dict(man, params=dict(man["params"], zz=[]))
    return json.dumps(m).replace('"zz": []', '"zz": ' + body)


def _lying_zip(path, payload, declared):
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = b""
    for i in range(0, len(payload), 1 << 24):
        data += comp.compress(payload[i:i + (1 << 24)])
    data += comp.flush()
    crc = zlib.crc32(payload)
    name = b"model.json"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), declared,
                        len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc,
                          len(data), declared, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data),
                      0)
    with open(path, "wb") as f:
        f.write(local + data + central + end)
    return path


def cases(tmp):
    normal, man, members = _base(tmp)
    text = json.dumps(man)
    yield "a normal model (LSTM, 64 units)", normal
    pos = json.loads(text)
    pos["attributes"]["_random_state"]["pos"] = 2**20
    yield "RandomState pos = 2**20 (crashed partial_fit)", _write(
        os.path.join(tmp, "pos.crnn"), json.dumps(pos), members, zipfile.ZIP_STORED)
    yield "21 million empty lists, deflated", _write(
        os.path.join(tmp, "lists.crnn"),
        _with_param(man, "[" + "[]," * 21_000_000 + "[]]"), members)
    yield "nesting 1,000,000 deep", _write(
        os.path.join(tmp, "deep.crnn"), _with_param(man, "[" * 10**6 + "]" * 10**6), members)
    yield "2,000,000 floats (under the value bound)", _write(
        os.path.join(tmp, "floats.crnn"),
        _with_param(man, "[" + ",".join(f"{i}.5" for i in range(2_000_000)) + "]"), members)
    yield "2,000,000 six-byte strings (under the bound)", _write(
        os.path.join(tmp, "strings.crnn"),
        _with_param(man, "[" + ",".join(f'"{i:06d}"' for i in range(2_000_000)) + "]"),
        members)
    yield "260,000 objects of one key (under the bound)", _write(
        os.path.join(tmp, "dicts.crnn"),
        _with_param(man, "[" + ",".join(['{"k":0}'] * 260_000) + "]"), members)
    payload = text.encode() + b" " * (1 << 30)
    yield "manifest declaring 4 KB, inflating to 1 GiB", _lying_zip(
        os.path.join(tmp, "inflate4k.crnn"), payload, 4096)
    yield "manifest declaring and inflating to 1 GiB", _lying_zip(
        os.path.join(tmp, "inflate1g.crnn"), payload, len(payload))
    entries = 1_000_000
    central = b"".join(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0,
                                   0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
                       for _ in range(entries))
    path = os.path.join(tmp, "members.crnn")
    with open(path, "wb") as f:
        f.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF,
                                      len(central), 0, 0))
    yield "a table of contents of 1,000,000 members", path


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args()
    rows = ["| file | size | load | peak RSS | result |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in cases(tmp):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True,
                                  text=True, timeout=600)
            if proc.returncode:
                result, wall, rss = f"exit {proc.returncode}", time.perf_counter() - t0, 0
            else:
                result, wall, rss = eval(proc.stdout.strip().splitlines()[-1])   # noqa: S307
            size = os.path.getsize(path)
            rows.append(f"| {name} | {size / 1024:,.0f} KB | {wall * 1000:,.0f} ms | "
                        f"{rss / 1024:,.0f} MB | {result} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
