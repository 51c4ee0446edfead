// Chooses the CPU ISA once: the best the CPU (and OS) supports, unless CONVKERN_ISA names one.
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/check.h"
#include "core/dispatch.h"

namespace ck {
namespace {

bool detect(Isa isa) {
  __builtin_cpu_init();  // static initialisers may run before libgcc's own
  switch (isa) {
    case kScalar: return true;
    // __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 state (xgetbv).
    case kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case kAvx512:
      return detect(kAvx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    default: return false;
  }
}

Isa best_isa() {
  for (int i = kNumIsa - 1; i > 0; --i)
    if (detect(Isa(i))) return Isa(i);
  return kScalar;
}

Isa initial_isa() {
  const char* env = std::getenv("CONVKERN_ISA");
  if (env && *env) {
    for (int i = 0; i < kNumIsa; ++i)
      if (std::strcmp(env, isa_name(Isa(i))) == 0 && detect(Isa(i))) return Isa(i);
    // An unknown or unsupported request falls back to the best ISA; Python warns about it.
  }
  return best_isa();
}

Isa g_isa = initial_isa();

}  // namespace

bool isa_supported(Isa isa) { return detect(isa); }
Isa active_isa() { return g_isa; }
const char* isa_name(Isa isa) {
  switch (isa) {
    case kScalar: return "scalar";
    case kAvx2: return "avx2";
    case kAvx512: return "avx512";
    default: return "unknown";
  }
}
void set_active_isa(Isa isa) {
  CK_CHECK(int(isa) >= 0 && int(isa) < kNumIsa, "isa", "unknown ISA");
  CK_CHECK(detect(isa), "isa", std::string(isa_name(isa)) + " is not supported by this CPU");
  g_isa = isa;
}

}  // namespace ck
