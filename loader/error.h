#pragma once
// One exception type for every error a user can cause (bad path, corrupt file, unsupported
// device, prompt too long...). Front ends catch it, print what() once, and exit non-zero.
// The kind lets a caller that must answer with a code (the C API, an HTTP server) tell the
// broad cases apart without parsing the message.
#include <stdexcept>
#include <string>

namespace megrez {

enum class ErrorKind {
  General,          // anything not below
  InvalidArgument,  // an option or argument out of range
  Model,            // the model files: missing, unreadable, corrupt, unsupported
  Device,           // no usable Vulkan device, or a device limitation
  OutOfMemory,      // device or host memory does not hold what was asked for
  ContextFull,      // the tokens do not fit the context
  Cancelled,        // the caller asked to stop
};

struct Error : std::runtime_error {
  explicit Error(const std::string& what, ErrorKind kind = ErrorKind::General)
      : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace megrez
