// Failures injected where the driver cannot be made to fail (runtime/vk/fault_injection.h):
// an exception while a pass is recorded, a failed submission, an expert upload that fails.
// Each ends the call with one error and leaves the engine usable in place: the retried pass
// gives logits bit-identical to an engine that never failed.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/error.h"
#include "runtime/stream/expert_uploader.h"
#include "runtime/vk/commands.h"
#include "runtime/vk/fault_injection.h"
#include "runtime/vk/memory.h"

using namespace megrez;
using namespace megrez::test;

namespace {

const std::vector<int32_t> kPrompt = {1027, 264, 2037, 397, 2824, 273, 264};

struct Disarm {
  ~Disarm() { disarm_faults(); }
};

EngineOptions streaming(const char* upload) {
  EngineOptions o = engine_options(64, KvCacheType::F32, 8);
  o.stream = StreamMode::Prefetch;
  o.expert_budget = "30%";
  o.expert_upload = upload;
  return o;
}

struct Reference {
  std::vector<float> logits;  // of decoding the prompt's last token
  uint64_t uploads = 0;       // upload jobs of that pass
};

Reference reference(const EngineOptions& options) {
  auto engine = load_engine(kTinyModelDir, options);
  engine->prefill(std::vector<int32_t>(kPrompt.begin(), kPrompt.end() - 1));
  Reference r;
  r.logits = engine->decode(kPrompt.back());
  r.uploads = engine->last_pass_stream_stats().uploads;
  return r;
}

// Decodes the prompt's last token with `point` armed at its `crossing`-th crossing: the call
// fails with the injected error; the same call again succeeds and matches `want` bit for bit.
void check_fault_then_recovery(const EngineOptions& options, FaultPoint point, uint32_t crossing,
                               const std::vector<float>& want) {
  Disarm disarm;
  auto engine = load_engine(kTinyModelDir, options);
  engine->prefill(std::vector<int32_t>(kPrompt.begin(), kPrompt.end() - 1));
  const uint32_t position = engine->position();
  arm_fault(point, crossing);
  CHECK_THROWS_WITH_AS(engine->decode(kPrompt.back()), doctest::Contains("injected fault"), Error);
  disarm_faults();
  CHECK(engine->position() == position);
  const std::vector<float> got = engine->decode(kPrompt.back());
  REQUIRE(got.size() == want.size());
  CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  // And the pass after that one too.
  CHECK_NOTHROW(engine->decode(kPrompt.front()));
  const auto start = std::chrono::steady_clock::now();
  engine = nullptr;  // nothing left waiting for a value that will never come
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
}

}  // namespace

TEST_CASE_FIXTURE(GpuTest, "an exception while a pass is recorded leaves the engine usable") {
  const EngineOptions resident = engine_options(64, KvCacheType::F32, 8);
  const Reference want = reference(resident);
  for (uint32_t crossing : {1u, 20u}) {
    CAPTURE(crossing);
    check_fault_then_recovery(resident, FaultPoint::Record, crossing, want.logits);  // was: "already recording"
    check_fault_then_recovery(streaming("host"), FaultPoint::Record, crossing, want.logits);
  }
}

TEST_CASE_FIXTURE(GpuTest, "a failed submission in a streaming pass: recovered in place, no wait at shutdown") {
  const Reference want = reference(engine_options(64, KvCacheType::F32, 8));
  for (const char* upload : {"host", "queue"}) {
    CAPTURE(upload);
    for (uint32_t crossing : {1u, 3u}) {
      CAPTURE(crossing);
      check_fault_then_recovery(streaming(upload), FaultPoint::Submit, crossing, want.logits);
    }
  }
}

// The last upload of a pass is waited for by the GPU only; the streamer checks the uploader
// when the pass ends. (On a device with one queue, lavapipe's, the submission that waits for
// it already reports the failure; with a separate transfer queue only that check does.)
TEST_CASE_FIXTURE(GpuTest, "a failed expert upload fails its own pass, the last upload of a pass included") {
  const std::vector<float> want = reference(engine_options(64, KvCacheType::F32, 8)).logits;
  for (const char* upload : {"host", "queue"}) {
    CAPTURE(upload);
    const Reference pass = reference(streaming(upload));
    REQUIRE(pass.uploads >= 2);
    for (uint32_t crossing : {1u, uint32_t(pass.uploads)}) {  // the first and the last of the pass
      CAPTURE(crossing);
      check_fault_then_recovery(streaming(upload), FaultPoint::Upload, crossing, want);
    }
  }
}

TEST_CASE_FIXTURE(GpuTest, "the expert uploader cancels queued jobs when destroyed instead of draining them") {
  // Ten 1 MB uploads at a throttled 1 MB/s: ten seconds to drain, about one to cancel.
  const size_t bytes = 1u << 20;
  Arena arena(ctx, "cancel-test", MemoryUse::Device, 10 * bytes + 4096);
  std::vector<BufferRange> slots;
  for (int i = 0; i < 10; ++i) slots.push_back(arena.allocate(bytes));
  REQUIRE(slots[0].host_visible());  // lavapipe: unified memory, the host-copy path
  const std::vector<uint8_t> source(bytes, 0x5a);
  TimelineSemaphore compute(ctx);
  auto enqueue_all = [&](ExpertUploader& uploader) {
    uint64_t last = 0;
    for (const BufferRange& slot : slots) {
      SlotUpload u;
      u.slot = slot;
      u.sources = {std::span<const uint8_t>(source), {}, {}};
      last = uploader.enqueue({u}, 0);
    }
    return last;
  };
  {
    auto uploader = std::make_unique<ExpertUploader>(ctx, ExpertUploadPath::HostCopy, compute, 0, 1e6);
    enqueue_all(*uploader);
    const auto start = std::chrono::steady_clock::now();
    uploader = nullptr;
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
  {
    // cancel(): the cancelled jobs count as done, so nothing waiting for them hangs.
    ExpertUploader uploader(ctx, ExpertUploadPath::HostCopy, compute, 0, 1e6);
    const uint64_t last = enqueue_all(uploader);
    const auto start = std::chrono::steady_clock::now();
    uploader.cancel();
    CHECK_NOTHROW(uploader.wait_done(last));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
  check_no_validation_messages(ctx, 0);
}
