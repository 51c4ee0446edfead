// Errors that reach Python as ValueError / TypeError, each naming the argument at fault.
// No pybind11 here: bindings.cpp maps these types to Python exceptions.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ck {

struct ValueError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
struct TypeError : std::invalid_argument { using std::invalid_argument::invalid_argument; };

}  // namespace ck

// CK_CHECK(cond, "weight", "must have 4 dimensions") throws ck::ValueError("weight: must have 4 dimensions").
#define CK_CHECK(cond, arg, msg)                                                   \
  do {                                                                             \
    if (!(cond)) throw ::ck::ValueError(std::string(arg) + ": " + (msg));          \
  } while (0)
#define CK_CHECK_TYPE(cond, arg, msg)                                              \
  do {                                                                             \
    if (!(cond)) throw ::ck::TypeError(std::string(arg) + ": " + (msg));           \
  } while (0)
