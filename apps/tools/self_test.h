#pragma once
// Kernel self-checks run by megrez-info on the chosen device: small fixed inputs compared
// against a CPU computation. A kernel opts in with `megrez_self_test(<name>)` in
// shaders/variants.cmake and defines `SelfTestResult megrez::self_tests::<name>(Context&)`
// in its runtime/*.cpp.
#include <span>
#include <string>

namespace megrez {

class Context;

struct SelfTestResult {
  bool ok = false;
  std::string detail;  // what was checked, or the first mismatch
};

struct SelfTest {
  const char* name;
  SelfTestResult (*run)(Context& ctx);
};

// In variants.cmake order.
std::span<const SelfTest> self_test_table();

}  // namespace megrez
