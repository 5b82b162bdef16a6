"""Count the memcheck errors of a valgrind log that involve cypool's code.

``python tests/fuzz/valgrind_errors.py LOG`` prints every error context and
exits 1 when one has a frame in a cypool extension module (a ``__pyx_``
function or a ``cypool/_*.so`` object).  The interpreter this project is
tested with reports a few dozen contexts of its own under memcheck (startup,
``int.from_bytes``, the garbage collector at exit, glibc's AVX2 ``wmemcmp``)
that ``/usr/lib/valgrind/python3.supp`` does not cover; they are listed, not
counted.
"""

import re
import sys

KINDS = ("Invalid read", "Invalid write", "Invalid free", "Mismatched free",
         "Use of uninitialised", "Conditional jump", "Syscall param", "Source and destination")
OURS = re.compile(r"__pyx_|cypool/_\w+\.cpython|cypool/_\w+\.so")


def error_blocks(text):
    """Each error context of a memcheck log as its list of lines."""
    blocks, current = [], None
    for line in text.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if body.startswith(KINDS):
            current = [body]
            blocks.append(current)
        elif current is not None and body.strip():
            current.append(body)
        else:
            current = None
    return blocks


def main(path):
    blocks = error_blocks(open(path, encoding="utf-8", errors="replace").read())
    ours = [b for b in blocks if any(OURS.search(line) for line in b)]
    for block in ours:
        print("\n".join(block), end="\n\n")
    summary = re.findall(r"ERROR SUMMARY: (\d+) errors from (\d+) contexts",
                         open(path, encoding="utf-8", errors="replace").read())
    total = summary[-1] if summary else ("?", "?")
    print(f"valgrind: {len(ours)} error contexts in cypool code; "
          f"{len(blocks) - len(ours)} in the interpreter and libc "
          f"({total[0]} errors from {total[1]} contexts in all)")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
