#include "loader/log.h"

#include <cstdio>
#include <string>

#ifdef __ANDROID__
#include <android/log.h>
#endif

namespace megrez {

void log_line(std::string_view line) {
  const std::string text(line);
  std::fprintf(stderr, "%s\n", text.c_str());
#ifdef __ANDROID__
  __android_log_write(ANDROID_LOG_INFO, "megrez", text.c_str());
#endif
}

void log_warning(std::string_view message) { log_line("megrez: warning: " + std::string(message)); }

}  // namespace megrez
