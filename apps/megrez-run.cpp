// megrez-run: generate text with a Megrez2 model on a Vulkan device, or chat with it.
//
//   megrez-run --prompt "In the beginning" -n 32
//   megrez-run --model model.gguf --chat --temp 0.7 --top-p 0.9
//   megrez-run --prompt-ids 1027,264,2037 -n 8 --dump-logits logits.f32
//
// Text streams to stdout as it is generated; speeds go to stderr at the end. Every user error
// prints one line "megrez-run: ..." and exits non-zero (2 for bad arguments, 1 otherwise).
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "loader/chat.h"
#include "loader/error.h"
#include "runtime/context.h"
#include "runtime/engine.h"
#include "runtime/text_stream.h"

namespace {

using namespace megrez;

struct UsageError : Error {
  using Error::Error;
};

const char* const kUsage = R"(usage: megrez-run [options]
  --model PATH          Hugging Face directory or .gguf file (default: the bundled tiny model)
  --prompt TEXT         prompt text (tokenized with the model's tokenizer)
  --prompt-ids 1,2,3    prompt as token ids
  -n N                  tokens to generate (default 64; in --chat, per reply: 512)
  --temp T              temperature; 0 = greedy (default 0; Megrez2 recommends 0.7)
  --top-k K             keep the K most likely tokens (default 0 = off)
  --top-p P             nucleus sampling (default 1 = off; Megrez2 recommends 0.9)
  --seed S              sampler seed (default 0)
  --repeat-penalty R    penalty for tokens of the last 64 (default 1 = off)
  --ctx N               context length in tokens (default min(model maximum, 4096))
  --kv f16|f32          KV cache type (default f16)
  --chunk N             prefill tokens per GPU pass (default from the device)
  --device N|NAME       Vulkan device by index or name substring (see --list-devices)
  --profile NAME|FILE   emulate a weaker device (minimum, adreno-7xx, mali-g7xx, or a .json)
  --validation          enable the Vulkan validation layer
  --chat                interactive chat (reads user turns from stdin; the KV cache is reused)
  --dump-logits FILE    write float32 logits: one row per evaluated position (prompt, then each
                        generated token as it is fed back: row P-1+t produced generated token t)
  --list-devices        list Vulkan devices and exit
  --help                this text
)";

struct Args {
  std::string model = std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny";
  std::optional<std::string> prompt;
  std::optional<std::vector<int32_t>> prompt_ids;
  std::optional<uint32_t> n;
  SamplerOptions sampler;
  EngineOptions engine;
  bool chat = false;
  std::string dump_logits;
  bool list_devices = false;
  bool help = false;
};

// ---- Argument parsing ------------------------------------------------------------------------

template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) throw UsageError(flag + " expects a number, got '" + text + "'");
  return value;
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    ids.push_back(parse_number<int32_t>("--prompt-ids", text.substr(start, comma - start)));
    start = comma + 1;
  }
  return ids;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--model") a.model = value();
    else if (flag == "--prompt") a.prompt = value();
    else if (flag == "--prompt-ids") a.prompt_ids = parse_ids(value());
    else if (flag == "-n") a.n = parse_number<uint32_t>(flag, value());
    else if (flag == "--temp") a.sampler.temperature = parse_number<float>(flag, value());
    else if (flag == "--top-k") a.sampler.top_k = parse_number<int32_t>(flag, value());
    else if (flag == "--top-p") a.sampler.top_p = parse_number<float>(flag, value());
    else if (flag == "--seed") a.sampler.seed = parse_number<uint64_t>(flag, value());
    else if (flag == "--repeat-penalty") a.sampler.repeat_penalty = parse_number<float>(flag, value());
    else if (flag == "--ctx") a.engine.ctx_len = parse_number<uint32_t>(flag, value());
    else if (flag == "--chunk") a.engine.chunk = parse_number<uint32_t>(flag, value());
    else if (flag == "--kv") {
      const std::string kv = value();
      if (!kv_cache_type_from_name(kv, a.engine.kv_type)) throw UsageError("--kv expects f16 or f32, got '" + kv + "'");
    } else if (flag == "--device") a.engine.device = value();
    else if (flag == "--profile") a.engine.profile = value();
    else if (flag == "--validation") a.engine.validation = true;
    else if (flag == "--chat") a.chat = true;
    else if (flag == "--dump-logits") a.dump_logits = value();
    else if (flag == "--list-devices") a.list_devices = true;
    else if (flag == "--help" || flag == "-h") a.help = true;
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  if (a.prompt && a.prompt_ids) throw UsageError("give --prompt or --prompt-ids, not both");
  if (a.chat && a.prompt_ids) throw UsageError("--chat takes text turns, not --prompt-ids");
  if (a.chat && !a.dump_logits.empty()) throw UsageError("--dump-logits cannot be combined with --chat");
  if (!a.chat && !a.prompt && !a.prompt_ids && !a.help && !a.list_devices) {
    throw UsageError("give a prompt (--prompt TEXT or --prompt-ids 1,2,3) or --chat");
  }
  validate(a.sampler);
  return a;
}

// ---- Output -----------------------------------------------------------------------------------

class LogitsFile {
 public:
  explicit LogitsFile(const std::string& path) : path_(path) {
    if (path.empty()) return;
    out_.open(path, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error("cannot write --dump-logits file " + path);
  }
  bool enabled() const { return out_.is_open(); }
  void write(const std::vector<float>& rows) {
    if (!enabled()) return;
    out_.write(reinterpret_cast<const char*>(rows.data()), std::streamsize(rows.size() * sizeof(float)));
    if (!out_) throw Error("writing " + path_ + " failed (disk full?)");
  }

 private:
  std::string path_;
  std::ofstream out_;
};

// Writes each token's text as soon as it forms whole characters (or its id without a tokenizer).
class TokenPrinter {
 public:
  explicit TokenPrinter(const Engine& engine) : engine_(engine) {}
  void print(int32_t id) {
    if (!engine_.has_tokenizer()) {
      std::printf("%d ", id);
    } else if (!engine_.tokenizer().is_special(id)) {
      std::fputs(utf8_.push(engine_.tokenizer().token_text(id)).c_str(), stdout);
    }
    std::fflush(stdout);
  }
  void finish() {
    std::fputs(utf8_.flush().c_str(), stdout);
    std::fflush(stdout);
  }

 private:
  const Engine& engine_;
  Utf8Stream utf8_;
};

void print_stats(const Engine& engine) {
  const EngineStats& s = engine.stats();
  std::fprintf(stderr,
               "\n[%s] load %.2f s; prefill %llu tokens, %.1f tokens/s; decode %llu tokens, %.1f tokens/s\n",
               engine.device_name().c_str(), s.load_seconds, static_cast<unsigned long long>(s.prefill_tokens),
               s.prefill_tokens_per_second(), static_cast<unsigned long long>(s.decode_tokens),
               s.decode_tokens_per_second());
}

// ---- Generation -------------------------------------------------------------------------------

// Greedy with no penalty runs the argmax on the GPU and never reads the logits back.
bool gpu_greedy(const SamplerOptions& o, const LogitsFile& dump) { return o.greedy() && o.repeat_penalty == 1.0f && !dump.enabled(); }

// Generates up to `n` tokens after `logits` (the prompt's last row); stops at a stop id (not
// fed back) or when the context is full. Returns the tokens generated, stop id included.
std::vector<int32_t> generate(Engine& engine, std::vector<float> logits, uint32_t n, const SamplerOptions& sampler,
                              std::vector<int32_t>& history, const std::vector<int32_t>& stop_ids,
                              LogitsFile& dump, TokenPrinter& printer) {
  std::vector<int32_t> out;
  int32_t next = engine.sample(logits, sampler, history);
  while (out.size() < n) {
    out.push_back(next);
    history.push_back(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    printer.print(next);
    if (out.size() == n || engine.position() >= engine.context_length()) break;
    if (gpu_greedy(sampler, dump)) {
      next = engine.decode_greedy(next);
    } else {
      logits = engine.decode(next);
      dump.write(logits);
      next = engine.sample(logits, sampler, history);
    }
  }
  printer.finish();
  return out;
}

std::vector<int32_t> default_stop_ids(const Engine& engine) {
  std::vector<int32_t> stops;
  if (engine.config().eos_token_id >= 0) stops.push_back(int32_t(engine.config().eos_token_id));
  if (engine.has_tokenizer() && engine.tokenizer().eos_id() >= 0) stops.push_back(engine.tokenizer().eos_id());
  return stops;
}

void run_prompt(Engine& engine, const Args& a) {
  std::vector<int32_t> prompt = a.prompt_ids ? *a.prompt_ids : engine.tokenize(*a.prompt);
  if (prompt.empty()) throw Error("the prompt has no tokens");
  LogitsFile dump(a.dump_logits);
  std::vector<float> logits = engine.prefill(prompt, dump.enabled());
  if (dump.enabled()) {
    dump.write(logits);
    logits.erase(logits.begin(), logits.end() - engine.config().vocab_size);
  }
  if (a.prompt) std::fputs(a.prompt->c_str(), stdout);
  TokenPrinter printer(engine);
  std::vector<int32_t> history = prompt;
  generate(engine, std::move(logits), a.n.value_or(64), a.sampler, history, default_stop_ids(engine), dump, printer);
  std::fputs("\n", stdout);
}

// ---- Chat -------------------------------------------------------------------------------------

// Multi-turn chat; the KV cache keeps every earlier turn, so each turn feeds only its own text.
void run_chat(Engine& engine, const Args& a) {
  const Tokenizer& tokenizer = engine.tokenizer();
  const ChatFormat chat(tokenizer);
  const std::optional<int32_t> turn_end = tokenizer.token_id("<|turn_end|>");
  std::vector<ChatMessage> conversation;
  std::vector<int32_t> history;
  LogitsFile no_dump("");
  std::optional<std::string> pending = a.prompt;
  std::fprintf(stderr, "chat with %s on %s; an empty line or end of input quits\n", a.model.c_str(),
               engine.device_name().c_str());
  while (true) {
    std::string user;
    if (pending) {
      user = *pending;
      pending.reset();
      std::fprintf(stderr, "> %s\n", user.c_str());
    } else {
      std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, user) || user.empty()) break;
    }
    const std::vector<ChatMessage> added = {{"user", user}};
    // The new turn's text after what the cache holds; the whole conversation when the template
    // does not simply extend it or the context is full.
    std::optional<std::string> text = chat.render_new_turns(conversation, added, true);
    std::vector<int32_t> ids = text ? engine.tokenize(*text) : std::vector<int32_t>{};
    if (!text || engine.position() + ids.size() + 1 >= engine.context_length()) {
      if (text) std::fprintf(stderr, "(context full: starting a new conversation)\n");
      engine.reset();
      conversation.clear();
      history.clear();
      ids = engine.tokenize(chat.render(added, true));
    }
    conversation.push_back(added[0]);
    std::vector<float> logits = engine.prefill(ids);
    history.insert(history.end(), ids.begin(), ids.end());
    TokenPrinter printer(engine);
    std::vector<int32_t> reply =
        generate(engine, std::move(logits), a.n.value_or(512), a.sampler, history, chat.stop_ids(), no_dump, printer);
    std::fputs("\n", stdout);
    // The cache holds every reply token but the last; a stop token is replaced by the turn's
    // closing <|turn_end|>, as the template renders the reply in the next turn's prefix.
    const bool stopped = !reply.empty() && chat.is_stop(reply.back());
    if (stopped) reply.pop_back();
    else if (!reply.empty() && engine.position() < engine.context_length()) engine.decode(reply.back());
    if (turn_end && engine.position() < engine.context_length()) engine.decode(*turn_end);
    conversation.push_back({"assistant", engine.detokenize(reply)});
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse_args(argc, argv);
    if (args.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.list_devices) {
      for (const std::string& line : megrez::list_devices()) std::printf("%s\n", line.c_str());
      return 0;
    }
    auto engine = megrez::Engine::load(args.model, args.engine);
    if (args.chat) {
      run_chat(*engine, args);
    } else {
      run_prompt(*engine, args);
    }
    print_stats(*engine);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "megrez-run: %s\n", e.what());
    return 2;
  } catch (const megrez::Error& e) {
    std::fprintf(stderr, "megrez-run: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megrez-run: internal error: %s\n", e.what());
    return 1;
  }
}
