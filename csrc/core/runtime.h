// Threads and build facts (no pybind11).
#pragma once
#include <string>

namespace ck {
void set_num_threads(int n);  // ValueError unless n >= 1
int get_num_threads();
bool has_openmp();
bool cuda_built();
int cuda_device_count();                  // 0 when CUDA is not built or no GPU/driver is present
std::string cuda_device_name(int device);
}  // namespace ck
