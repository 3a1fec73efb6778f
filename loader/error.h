#pragma once
// One exception type for every error a user can cause (bad path, corrupt file, unsupported
// device, prompt too long...). Front ends catch it, print what() once, and exit non-zero.
#include <stdexcept>
#include <string>

namespace megrez {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace megrez
