"""The writer of the .lbg golden files that tests/support/golden_file.hpp reads; shared by the
make_*_golden.py scripts (which otherwise import nothing from the repository).

File format (all integers and floats little-endian):
    magic      8 bytes   b"LBGOLD01"
    n_entries  uint32
    then n_entries entries, each:
        name_len  uint32
        name      name_len bytes, ASCII
        dtype     uint32     0 = float32, 1 = int32, 2 = float64
        ndim      uint32
        dims      int64[ndim]
        data      prod(dims) elements of dtype, row-major (C order);
                  a scalar has ndim 0 and one element.
"""
import struct

import torch

MAGIC = b"LBGOLD01"
DTYPE_CODES = {torch.float32: 0, torch.int32: 1, torch.float64: 2}


def write_lbg(path, entries):
    """Writes `entries` (a dict name -> tensor, or (name, tensor) pairs, in file order) to `path`.
    Each tensor is stored in its own dtype, which must be float32, int32 or float64."""
    items = list(entries.items()) if isinstance(entries, dict) else list(entries)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(items)))
        for name, tensor in items:
            if tensor.dtype not in DTYPE_CODES:
                raise ValueError("{}: dtype {} is not float32, int32 or float64".format(name, tensor.dtype))
            encoded = name.encode("ascii")
            array = tensor.detach().contiguous().numpy()
            f.write(struct.pack("<I", len(encoded)))
            f.write(encoded)
            f.write(struct.pack("<II", DTYPE_CODES[tensor.dtype], tensor.dim()))
            f.write(struct.pack(f"<{tensor.dim()}q", *tensor.shape))
            f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))
