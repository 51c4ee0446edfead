"""Reads LeakSanitizer reports; prints the leak records whose allocation stack passes through
convkern's native module (_C*.so) and exits 1 if there is any, else prints a summary."""
import re
import sys

ours, total, total_bytes = [], 0, 0
for path in sys.argv[1:]:
    try:
        text = open(path, errors="replace").read()
    except OSError:
        continue
    for block in re.split(r"\n(?=(?:Direct|Indirect) leak of )", text):
        m = re.match(r"(Direct|Indirect) leak of (\d+) byte", block)
        if not m:
            continue
        total += 1
        total_bytes += int(m.group(2))
        frames = [ln for ln in block.splitlines() if ln.strip().startswith("#")]
        if any("/_C." in f or " ck::" in f or "/csrc/" in f or "pybind11" in f for f in frames):
            ours.append(block.strip())
print(f"LeakSanitizer: {total} leak records ({total_bytes} bytes) in the whole process; "
      f"{len(ours)} allocated through convkern's _C module")
for b in ours[:20]:
    print(b, "\n")
sys.exit(1 if ours else 0)
