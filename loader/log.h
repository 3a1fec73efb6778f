#pragma once
// Messages the libraries print themselves (warnings, validation-layer lines): stderr, and on
// Android also the system log (logcat), where an app's stderr goes nowhere.
#include <string_view>

namespace megrez {

void log_warning(std::string_view message);  // "megrez: warning: <message>"
void log_line(std::string_view line);        // as is

}  // namespace megrez
