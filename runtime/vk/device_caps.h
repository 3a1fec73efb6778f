#pragma once
// DeviceCaps: the one place kernel choices read device limits and features from. Filled from
// the real device, then optionally capped by a profile (JSON) that emulates a weaker device
// (a phone GPU, the Vulkan minimum) so mobile limits are exercised on every machine.
// A profile can only make caps stricter: limits are lowered, alignments raised, features
// switched off. Features switched off are also not enabled on the VkDevice, so the
// validation layer catches a kernel that uses them anyway.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/vk/device_info.h"

namespace megrez {

struct DeviceCaps {
  std::string profile;                    // profile name ("" = the real device)

  // Limits (bytes unless noted).
  uint64_t max_storage_range = 0;         // maxStorageBufferRange: largest single binding
  uint64_t storage_offset_alignment = 0;  // minStorageBufferOffsetAlignment
  uint64_t max_uniform_range = 0;         // maxUniformBufferRange
  uint64_t uniform_offset_alignment = 0;  // minUniformBufferOffsetAlignment
  uint64_t max_allocation_size = 0;       // maxMemoryAllocationSize
  uint32_t max_shared_memory = 0;         // maxComputeSharedMemorySize
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_workgroup_size[3] = {};
  uint32_t max_workgroup_count[3] = {};
  uint32_t max_push_constants = 0;        // maxPushConstantsSize

  // Subgroups (compute stage). subgroup_size is the real device's: it cannot be emulated.
  uint32_t subgroup_size = 1;
  uint32_t min_subgroup_size = 1;
  uint32_t max_subgroup_size = 1;
  bool subgroup_arithmetic = false;       // basic + arithmetic ops in compute shaders
  bool subgroup_shuffle = false;
  bool subgroup_size_control = false;     // VK_EXT_subgroup_size_control available

  // Numeric formats.
  bool fp16_arithmetic = false;           // shaderFloat16
  bool int8_arithmetic = false;           // shaderInt8
  bool int16_arithmetic = false;          // shaderInt16
  bool storage_16bit = false;             // storageBuffer16BitAccess
  bool storage_8bit = false;              // storageBuffer8BitAccess

  // Runtime paths.
  bool push_descriptors = false;          // VK_KHR_push_descriptor (else descriptor pools)
  uint32_t max_push_descriptors = 0;
  bool unified_memory = false;            // device-local memory is host-visible: map, no staging
  bool timestamps = false;                // compute queue writes timestamps
  bool cpu_device = false;                // VK_PHYSICAL_DEVICE_TYPE_CPU (lavapipe, SwiftShader)
  uint32_t timestamp_valid_bits = 0;
  float timestamp_period_ns = 1.0f;

  // Quirks: driver behaviour no limit describes.
  // Tokens per prefill pass the driver survives, 0 = no limit. Qualcomm's Adreno driver
  // reports DeviceLost on prompt batches over 32 tokens (llama.cpp's Vulkan issue tracker).
  uint32_t max_prefill_chunk = 0;
  // The shader compiler handles f16 <-> f32 conversions (unpackHalf2x16: f16 weights, the f16
  // scales of q8_0/q4_0 blocks, an f16 KV cache). Mesa's llvmpipe on AArch64 with LLVM <= 15
  // aborts the process compiling them ("Cannot select ... v4f32 = truncate / VLSHR"), so there
  // only f32/bf16 weights with an f32 KV cache run; the engine refuses the rest up front.
  bool half_conversions = true;

  // Reductions through subgroup ops, or the shared-memory-only variant (<kernel>_shmem).
  bool use_subgroup_reduce() const { return subgroup_arithmetic; }
  // Matrix-vector products as whole rows per invocation (<kernel>_rows, Reduce::PerInvocation):
  // on a CPU driver an invocation is a SIMD lane and each per-lane load is a loop over the
  // lanes, so few wide loads beat the GPU layout (shaders/common/row_dot.glsl) 2-4x.
  bool sum_rows_per_invocation() const { return cpu_device; }
};

// Real limits of `info`, with timestamps read from the compute queue family.
DeviceCaps caps_from_device(const DeviceInfo& info, uint32_t compute_family);

// Caps `caps` by a profile: a built-in name (see builtin_profile_names()) or a path to a
// .json file. Throws megrez::Error naming the profile and key on any problem.
void apply_profile(DeviceCaps& caps, const std::string& name_or_path);

// Same, from JSON text; `origin` names it in error messages.
void apply_profile_json(DeviceCaps& caps, const std::string& json_text, const std::string& origin);

std::vector<std::string> builtin_profile_names();

}  // namespace megrez
