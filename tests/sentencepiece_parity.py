#!/usr/bin/python3
"""Parity of llamablocks' SentencePieceTokenizer with Google's SentencePiece.

Encodes every line of a text file (no BOS/EOS) with the C++ tool tests/tools/encode_lines, which
reads llama2.c's tokenizer.bin, and with sentencepiece.SentencePieceProcessor on the original
tokenizer.model, and compares the ids line by line. A few hand-written lines that stress the
corner cases (spaces, byte fallback, multi-byte characters) are checked as well.

Usage:
    /usr/bin/python3 tests/sentencepiece_parity.py ENCODE_LINES TOKENIZER_BIN TOKENIZER_MODEL TEXT

Needs Debian's python3-sentencepiece. Exit status: 0 when every line agrees, 1 on a mismatch or an
error, 77 (CTest's SKIP_RETURN_CODE) when sentencepiece or an input file is missing.
"""

import os
import subprocess
import sys

SKIP = 77

# Lines that exercise what a plain text may not: no text, spaces only, runs of spaces, leading and
# trailing spaces, tabs and control characters (byte fallback), accents, CJK, emoji, and text that
# spells special pieces.
EXTRA_LINES = [
    "",
    " ",
    "  ",
    "   a",
    "a   ",
    "a  b   c    d",
    "\ttab\tseparated\t",
    "\x01\x02\x7f",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "\u4f60\u597d\uff0c\u4e16\u754c",
    "\u3053\u3093\u306b\u3061\u306f \uc548\ub155\ud558\uc138\uc694",
    "emoji \U0001f600\U0001f680 \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "<s> </s> <unk> <0x41> \u2047",
    "I believe the meaning of life is",
    "     indented code: x = [1, 2, 3]  # comment",
    "\u00ff\u0100\uffff",
]


def read_lines(path):
    """The lines of `path` as UTF-8 strings, without their '\\n' (no '\\n'-translation)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8") for line in lines]


def encode_with_tool(tool, tokenizer_bin, lines):
    stdin = "".join(line + "\n" for line in lines).encode("utf-8")
    result = subprocess.run([tool, tokenizer_bin], input=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode("utf-8", "replace"))
        raise RuntimeError(f"{tool} exited with status {result.returncode}")
    out = result.stdout.decode("ascii").split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(lines):
        raise RuntimeError(f"{tool} printed {len(out)} lines for {len(lines)} input lines")
    return [[int(tok) for tok in line.split()] for line in out]


def compare(name, lines, ours, theirs, processor):
    """Prints the first mismatch; returns the number of mismatching lines."""
    mismatches = 0
    for number, (line, a, b) in enumerate(zip(lines, ours, theirs), start=1):
        if a == b:
            continue
        mismatches += 1
        if mismatches == 1:
            print(f"{name}: first mismatch at line {number}: {line!r}")
            print(f"  llamablocks:  {a}")
            print(f"  sentencepiece: {b}")
            print(f"  sentencepiece pieces: {[processor.id_to_piece(i) for i in b]}")
    print(f"{name}: {len(lines)} lines compared, {mismatches} mismatches")
    return mismatches


def main(argv):
    if len(argv) != 5:
        print(__doc__)
        return 1
    tool, tokenizer_bin, tokenizer_model, text = argv[1:]
    try:
        import sentencepiece
    except ImportError:
        print("skipped: python3-sentencepiece not installed "
              "(apt-get install python3-sentencepiece)")
        return SKIP
    for path in (tokenizer_bin, tokenizer_model, text):
        if not os.path.isfile(path):
            print(f"skipped: {path} not found")
            return SKIP

    processor = sentencepiece.SentencePieceProcessor(model_file=tokenizer_model)
    mismatches = 0
    for name, lines in ((os.path.basename(text), read_lines(text)), ("extra lines", EXTRA_LINES)):
        ours = encode_with_tool(tool, tokenizer_bin, lines)
        theirs = [processor.encode(line) for line in lines]
        mismatches += compare(name, lines, ours, theirs, processor)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
