#pragma once
// The SPIR-V modules compiled from shaders/variants.cmake, embedded in the library by a
// build-time generated source (shaders/cmake/embed_spirv.cmake).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace megrez {

struct EmbeddedShader {
  const char* name;        // variant name, e.g. "matvec_q4_0_shmem"
  const char* source;      // the .comp file it came from
  const uint32_t* words;   // SPIR-V
  size_t word_count;
  uint32_t bindings;       // storage buffers at set 0, bindings 0..bindings-1 (variant table)
  uint32_t push_size;      // sizeof the ABI push-constant struct (0: none)
};

std::span<const EmbeddedShader> embedded_shaders();

// nullptr when no variant has that name.
const EmbeddedShader* find_embedded_shader(std::string_view name);

}  // namespace megrez
