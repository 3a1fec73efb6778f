#pragma once
// The one-screen device report (megrez-info, the engine's --validation runs): driver, queues,
// memory, limits, features, caps, and the expert upload path.
#include <string>

namespace megrez {

class Context;

std::string device_report(const Context& ctx);

}  // namespace megrez
