"""Minimal safetensors writer/reader (no external package).

Layout: u64 little-endian header length N, then N bytes of JSON
{"name": {"dtype": "BF16"|"F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 "__metadata__": {"format": "pt"}}, padded with spaces to a multiple of 8, then the raw
little-endian tensor data; offsets are relative to the end of the header.
"""
import json
import struct

import torch

_DTYPES = {"BF16": (torch.bfloat16, 2), "F32": (torch.float32, 4)}


def _raw_bytes(t, dtype_name):
    t = t.detach().contiguous()
    if dtype_name == "BF16":
        # torch's fp32 -> bf16 conversion rounds to nearest even.
        return t.float().to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    return t.float().numpy().astype("<f4").tobytes()


def write(path, tensors, dtypes):
    """tensors: {name: tensor}; dtypes: {name: "BF16" | "F32"}. Names are written sorted."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = _raw_bytes(tensors[name], dtypes[name])
        header[name] = {"dtype": dtypes[name], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read(path):
    """Returns {name: fp32 tensor} and {name: dtype string}."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    tensors, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        torch_dtype, size = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        if end - begin != count * size:
            raise ValueError(f"{name}: {end - begin} bytes for shape {info['shape']}")
        raw = bytearray(blob[base + begin:base + end])
        if info["dtype"] == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(raw, dtype=torch.float32)
        tensors[name] = t.float().reshape(info["shape"]).clone()
        dtypes[name] = info["dtype"]
    return tensors, dtypes
