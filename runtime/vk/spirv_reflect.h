#pragma once
// Just enough SPIR-V reflection to hold the variant table honest: which storage-buffer
// bindings a module declares and how large its push-constant block is.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace megrez {

struct ShaderReflection {
  std::vector<uint32_t> bindings;  // buffer bindings in descriptor set 0, sorted
  uint32_t uniform_bindings = 0;   // bit b set: binding b is a uniform buffer, else a storage buffer
  uint32_t push_size = 0;          // bytes of the push-constant block (0: none)
};

// Throws megrez::Error (naming `name`) on malformed SPIR-V, descriptor sets other than 0,
// bindings past 31, or descriptor kinds other than storage and uniform buffers (the shader
// ABI allows nothing else).
ShaderReflection reflect_spirv(std::span<const uint32_t> words, const std::string& name);

}  // namespace megrez
