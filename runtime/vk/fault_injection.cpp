#include "runtime/vk/fault_injection.h"

#include <array>
#include <atomic>
#include <string>

#include "loader/error.h"

namespace megrez {

namespace {

constexpr size_t kPoints = 3;
constexpr const char* kNames[kPoints] = {"record", "submit", "upload"};
// Crossings left before the failure; 0 = disarmed.
std::array<std::atomic<uint32_t>, kPoints> g_countdown{};

}  // namespace

void arm_fault(FaultPoint point, uint32_t crossings) {
  g_countdown[size_t(point)].store(crossings, std::memory_order_relaxed);
}

void disarm_faults() {
  for (auto& c : g_countdown) c.store(0, std::memory_order_relaxed);
}

void fault_point(FaultPoint point) {
  std::atomic<uint32_t>& countdown = g_countdown[size_t(point)];
  uint32_t left = countdown.load(std::memory_order_relaxed);
  while (left != 0) {
    if (countdown.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
      if (left == 1) throw Error(std::string("injected fault: ") + kNames[size_t(point)]);
      return;
    }
  }
}

}  // namespace megrez
