// libFuzzer target: arbitrary bytes as a safetensors file; every tensor view it yields is
// read in full. Anything but megrez::Error escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.h"
#include "loader/error.h"
#include "loader/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    for (const megrez::TensorView& t : megrez::parse_safetensors(std::span(data, size), "fuzz.safetensors"))
      fuzz::touch(t);
  } catch (const megrez::Error&) {}
  return 0;
}
