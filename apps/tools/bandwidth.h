#pragma once
// The bandwidth baseline: how fast the device copies memory with the copy_vec4 kernel,
// timed by GPU timestamps. Bandwidth-bound kernels (decode mat-vecs) are judged against it.
#include <cstdint>

namespace megrez {

class Context;

struct BandwidthResult {
  uint64_t bytes = 0;   // bytes copied per run (each is read once and written once)
  double ms = 0;        // best run
  double gb_per_s = 0;  // (read + write) bytes / time, 1 GB = 1e9 bytes
};

// Copies `bytes` (clamped to the storage range, rounded down to 16) `repeats` times and
// reports the fastest run. Throws megrez::Error when the device has no timestamps.
BandwidthResult measure_copy_bandwidth(Context& ctx, uint64_t bytes = uint64_t{64} << 20, int repeats = 5);

}  // namespace megrez
