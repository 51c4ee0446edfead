#!/usr/bin/env python
"""Fails if an AVX2/AVX-512 object file defines a weak symbol outside ck::isa_avx2 / ck::isa_avx512.

Weak (COMDAT) definitions are how inline functions and template instances are shared across
translation units; if one compiled with AVX-512 flags were kept by the linker, a CPU without
AVX-512 would crash in code that looks ISA-neutral. Builds a throwaway CMake tree if needed.
"""
import glob
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.join(root, "build", "isa-check")
subprocess.run(["cmake", "-S", root, "-B", build, "-DCONVKERN_OBJECTS_ONLY=ON", "-DCMAKE_BUILD_TYPE=Release"],
               check=True, stdout=subprocess.DEVNULL)
subprocess.run(["cmake", "--build", build, "-j2", "--target", "ck_cpu_avx2", "ck_cpu_avx512"], check=True,
               stdout=subprocess.DEVNULL)
bad = []
for isa in ("avx2", "avx512"):
    for obj in glob.glob(os.path.join(build, "CMakeFiles", f"ck_cpu_{isa}.dir", "**", "*.o"), recursive=True):
        out = subprocess.run(["nm", "-C", "--defined-only", obj], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split(" ", 2)
            # DW.ref.__gxx_personality_v0: a data pointer for exception unwinding, identical everywhere
            if parts[-1] == "DW.ref.__gxx_personality_v0":
                continue
            if len(parts) == 3 and parts[1] in ("W", "V", "u") and f"isa_{isa}" not in parts[2]:
                bad.append(f"{os.path.basename(obj)} [{isa}]: {parts[2]}")
if bad:
    print("weak symbols outside the ISA namespace (move them into ck::CK_ISA_NS):")
    print("\n".join(sorted(set(bad))[:50]))
    sys.exit(1)
print("isa symbol check: ok")
