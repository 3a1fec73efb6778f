#pragma once
// Test hooks for failures a driver cannot be made to produce on demand (an exception while a
// pass is recorded, a failed vkQueueSubmit, an expert upload that cannot read the model
// file). A test arms a point to throw megrez::Error on its n-th crossing; nothing else arms
// them, and a crossing costs one relaxed atomic load.
#include <cstdint>

namespace megrez {

enum class FaultPoint : uint32_t {
  Record,  // dispatch(): a kernel is being recorded
  Submit,  // CommandBuffer::submit(): ended, about to be submitted
  Upload,  // ExpertUploader: a job is about to copy its experts
};

// The `crossings`-th crossing of `point` from now (1 = the next one) throws, once.
void arm_fault(FaultPoint point, uint32_t crossings);
void disarm_faults();
// Throws megrez::Error("injected fault: ...") when `point` is armed and due.
void fault_point(FaultPoint point);

}  // namespace megrez
