// megrez-info: prints the device report and runs the kernel self-checks on one device.
//   megrez-info [--device N|NAME] [--profile NAME|PATH] [--validation] [--list-devices]
// Exit code 0 when every self-check passes (and validation, if on, stayed silent).
#include <cstdio>
#include <cstring>
#include <string>

#include "apps/tools/bandwidth.h"
#include "apps/tools/self_test.h"
#include "runtime/vk/context.h"
#include "runtime/vk/device_report.h"
#include "runtime/vk/memory.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: megrez-info [--device N|NAME] [--profile NAME|PATH] [--validation] [--list-devices]\n"
               "  --device N|NAME   device index (see --list-devices) or name substring (default: MEGREZ_DEVICE, else best)\n"
               "  --profile P       cap device limits by a profile: built-in name or .json path (default: MEGREZ_PROFILE)\n"
               "  --validation      enable the Khronos validation layer with synchronization validation\n"
               "  --list-devices    list Vulkan devices and exit\n");
}

int run(int argc, char** argv) {
  megrez::ContextOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw megrez::Error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--device") {
      options.device = value();
    } else if (arg == "--profile") {
      options.profile = value();
    } else if (arg == "--validation") {
      options.validation = true;
    } else if (arg == "--list-devices") {
      for (const std::string& line : megrez::list_devices()) std::printf("%s\n", line.c_str());
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      throw megrez::Error("unknown argument '" + arg + "'");
    }
  }
  megrez::Context ctx(options);
  std::printf("%s\n", megrez::device_report(ctx).c_str());
  bool all_ok = true;
  std::printf("Self-checks:\n");
  for (const megrez::SelfTest& test : megrez::self_test_table()) {
    megrez::SelfTestResult result;
    try {
      result = test.run(ctx);
    } catch (const megrez::Error& e) {
      result = {false, e.what()};
    }
    all_ok = all_ok && result.ok;
    std::printf("  %-12s %s  %s\n", test.name, result.ok ? "OK  " : "FAIL", result.detail.c_str());
  }
  if (ctx.caps().timestamps) {
    try {
      const megrez::BandwidthResult bw = megrez::measure_copy_bandwidth(ctx);
      std::printf("Copy bandwidth (copy_vec4, %s): %.1f GB/s read+write, %.3f ms\n",
                  megrez::format_bytes(bw.bytes).c_str(), bw.gb_per_s, bw.ms);
    } catch (const megrez::Error& e) {
      all_ok = false;
      std::printf("Copy bandwidth: FAIL  %s\n", e.what());
    }
  }
  if (ctx.validation_enabled()) {
    const uint32_t messages = ctx.validation_message_count();
    std::printf("Validation: %u message(s)\n", messages);
    all_ok = all_ok && messages == 0;
  }
  std::printf("%s\n", all_ok ? "OK" : "FAIL");
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megrez-info: %s\n", e.what());
    return 2;
  }
}
