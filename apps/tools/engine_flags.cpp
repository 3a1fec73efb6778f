#include "apps/tools/engine_flags.h"

#include <filesystem>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "runtime/stream/expert_streamer.h"

namespace megrez {

std::string default_model_path() {
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    const std::filesystem::path installed = exe.parent_path().parent_path() / "share/megrez/models/megrez2-tiny";
    if (std::filesystem::is_directory(installed, error)) return installed.string();
  }
  return std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny";
}

namespace {

// The budget's syntax ("25%", "512MB") is checked here so a typo is a usage error; whether it
// holds enough experts depends on the model and is Engine::load's to say.
std::string checked_expert_budget(const std::string& text) {
  try {
    parse_expert_budget(text, 1);
  } catch (const Error& e) {
    throw UsageError(std::string("--expert-budget: ") + e.what());
  }
  return text;
}

StreamMode checked_stream_mode(const std::string& text) {
  StreamMode mode;
  if (!stream_mode_from_name(text, mode)) {
    throw UsageError("--stream expects auto, resident, prefetch or ondemand, got '" + text + "'");
  }
  return mode;
}

double checked_storage_bw(const std::string& text) {
  const double gb_per_s = parse_flag_number<double>("--storage-bw", text);
  if (!std::isfinite(gb_per_s) || gb_per_s < 0 || (gb_per_s > 0 && gb_per_s < kMinStorageBandwidth)) {
    throw UsageError("--storage-bw expects a bandwidth in GB/s, 0 (unthrottled) or at least 0.001, got '" + text + "'");
  }
  return gb_per_s;
}

std::string checked_choice(const std::string& flag, const std::string& text, const char* a, const char* b) {
  if (text != a && text != b) throw UsageError(flag + " expects " + a + " or " + b + ", got '" + text + "'");
  return text;
}

}  // namespace

std::vector<std::string> split_flag_list(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

std::string FlagCursor::value() {
  const std::string name = flag();
  if (index_ + 1 >= argc_) throw UsageError(name + " needs a value");
  return argv_[++index_];
}

bool parse_engine_flag(FlagCursor& cursor, EngineOptions& o) {
  const std::string flag = cursor.flag();
  if (flag == "--ctx") o.ctx_len = parse_flag_number<uint32_t>(flag, cursor.value());
  else if (flag == "--chunk") o.chunk = parse_flag_number<uint32_t>(flag, cursor.value());
  else if (flag == "--kv") {
    const std::string kv = cursor.value();
    if (!kv_cache_type_from_name(kv, o.kv_type)) throw UsageError("--kv expects f16 or f32, got '" + kv + "'");
  } else if (flag == "--device") o.device = cursor.value();
  else if (flag == "--profile") o.profile = cursor.value();
  else if (flag == "--validation") o.validation = true;
  else if (flag == "--expert-budget") o.expert_budget = checked_expert_budget(cursor.value());
  else if (flag == "--stream") o.stream = checked_stream_mode(cursor.value());
  else if (flag == "--storage-bw") o.storage_bw = checked_storage_bw(cursor.value());
  else if (flag == "--eviction") o.eviction = checked_choice(flag, cursor.value(), "pool", "lru");
  else if (flag == "--expert-upload") o.expert_upload = checked_choice(flag, cursor.value(), "queue", "host");
  else if (flag == "--layer-breaks") o.layer_breaks = true;
  else return false;
  return true;
}

int run_tool(const char* tool, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", tool, e.what());
    return 1;
  }
}

std::string engine_flags_usage(std::string_view ctx_default) {
  return "  --ctx N               context length in tokens (default " + std::string(ctx_default) + ")\n" +
         R"(  --kv f16|f32          KV cache type (default f16)
  --chunk N             prefill tokens per GPU pass (default from the device; 1 = decode kernels)
  --device N|NAME       Vulkan device by index or name substring (megrez-run --list-devices)
  --profile NAME|FILE   emulate a weaker device (minimum, adreno-7xx, mali-g7xx, or a .json), or
                        gpu-kernels: the GPU-shaped kernels on a CPU driver (a baseline)
  --validation          enable the Vulkan validation layer
  --expert-budget B     device memory for routed experts: a share of them (25%) or a size
                        (512MB, 1.5GB); below all of them the rest stream from the model file
  --stream MODE         auto (default: prefetch when the budget is below the experts, else
                        resident), resident, prefetch (upload a layer's experts while the
                        previous layer computes) or ondemand (upload when reached, no overlap)
  --storage-bw GB/s     throttle streamed expert reads (phone flash ~4.2; default 0 = off)
  --eviction pool|lru   expert cache policy (default pool: keep experts the pool's next
                        layers use)
  --expert-upload queue|host
                        upload path: transfer queue, or host copy into mapped memory (unified
                        memory only); default chosen per device
  --layer-breaks        submit resident passes in parts of about 10 ms, so other work on the
                        queue (a window's frames) runs in between (megrez-chat always does)
)";
}

}  // namespace megrez
