#include "common/gpu_fixture.h"

#include <memory>
#include <string>

namespace megrez::test {

ContextOptions validated_options() {
  ContextOptions options;
  options.validation = true;
  options.sync_validation = true;
  options.print_validation = false;
  return options;
}

Context& gpu() {
  static std::unique_ptr<Context> context = std::make_unique<Context>(validated_options());
  return *context;
}

void check_no_validation_messages(const Context& ctx, uint32_t since) {
  const uint32_t now = ctx.validation_message_count();
  std::string text;
  if (now != since) {
    for (const std::string& m : ctx.validation_messages()) text += m + "\n";
  }
  CHECK_MESSAGE(now == since, "validation layer reported " << (now - since) << " message(s):\n" << text);
}

GpuTest::GpuTest() : ctx(gpu()), messages_before(ctx.validation_message_count()) {}

GpuTest::~GpuTest() { check_no_validation_messages(ctx, messages_before); }

}  // namespace megrez::test
