#include "runtime/engine/generate.h"

#include <algorithm>
#include <chrono>

#include "loader/error.h"
#include "runtime/engine/text_stream.h"

namespace megrez {

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void validate(const TextOptions& o) {
  validate(o.sampler);
  if (o.stop.size() > kMaxStopSequences) {
    throw Error(std::to_string(o.stop.size()) + " stop sequences; at most " + std::to_string(kMaxStopSequences),
                ErrorKind::InvalidArgument);
  }
  for (const std::string& stop : o.stop) {
    if (stop.empty() || stop.size() > kMaxStopSequenceBytes) {
      throw Error("a stop sequence must have 1 to " + std::to_string(kMaxStopSequenceBytes) + " bytes, got " +
                  std::to_string(stop.size()), ErrorKind::InvalidArgument);
    }
  }
}

// One generated reply as text: the ids, the bytes each prefix of them decodes to, and why it ended.
struct GeneratedText {
  std::vector<int32_t> ids;            // every generated id, a final stop id included
  std::vector<size_t> bytes_before;    // [i]: bytes of ids[0..i), i <= ids.size() (special tokens count 0)
  bool stop_id = false;                // ended on a stop id (not shown, not kept)
};

// Generates after `logits` and streams text through options.on_text with stop sequences and
// cancellation. `history` gains the ids (the last is not fed to the engine, as in generate()).
GeneratedText generate_text(Engine& engine, std::vector<float> logits, std::vector<int32_t>& history,
                            const std::vector<int32_t>& stop_ids, const TextOptions& options, TextResult& result,
                            Clock::time_point start) {
  const Tokenizer& tokenizer = engine.tokenizer();
  Utf8Stream utf8;
  StopSequences stops(options.stop);
  bool halted = false;
  GeneratedText out;
  size_t bytes = 0;
  auto show = [&](const std::string& text) {
    if (text.empty() || halted) return;
    result.text += text;
    if (options.on_text && !options.on_text(text)) halted = true;
  };
  GenerateOptions g;
  g.sampler = options.sampler;
  g.max_tokens = options.max_tokens;
  g.stop_ids = stop_ids;
  g.on_token = [&](int32_t id) {
    if (out.bytes_before.empty()) result.time_to_first_token = seconds_since(start);
    out.bytes_before.push_back(bytes);
    if (tokenizer.is_special(id)) return;
    const std::string piece = tokenizer.token_text(id);
    bytes += piece.size();
    show(stops.push(utf8.push(piece)));
    if (stops.matched()) halted = true;
  };
  g.should_stop = [&] { return halted || (options.cancel && options.cancel->load()); };
  g.before_decode = options.between_tokens;
  const Clock::time_point decode_start = Clock::now();
  out.ids = generate(engine, std::move(logits), g, history);
  result.decode_seconds = seconds_since(decode_start);
  out.stop_id = !out.ids.empty() && contains(stop_ids, out.ids.back());
  if (out.bytes_before.empty() && !out.ids.empty()) result.time_to_first_token = seconds_since(start);
  if (out.stop_id) out.bytes_before.push_back(bytes);
  out.bytes_before.push_back(bytes);
  if (!stops.matched() && !halted) show(stops.push(utf8.flush()) + stops.flush());

  result.completion_tokens = uint32_t(out.ids.size());
  // A cancel that arrives once the reply is complete does not change why it ended.
  const bool cancelled = (options.cancel && options.cancel->load()) || (halted && !stops.matched());
  if (out.stop_id || stops.matched()) result.finish = FinishReason::Stop;
  else if (out.ids.size() >= options.max_tokens) result.finish = FinishReason::Length;
  else if (cancelled) result.finish = FinishReason::Cancelled;
  else result.finish = FinishReason::Context;
  return out;
}

// After generate_text the cache holds every generated id but the last. Rewinds it to hold the
// shown text (result.text) and no more, then feeds `close` (the end of a chat turn); keeps
// `history` equal to the cache.
void keep_shown_text(Engine& engine, std::vector<int32_t>& history, size_t prompt_end, const GeneratedText& gen,
                     const std::string& shown, std::span<const int32_t> close) {
  const size_t content = gen.ids.size() - (gen.stop_id ? 1 : 0);
  size_t keep = content;  // the ids whose bytes were all shown
  while (keep > 0 && gen.bytes_before[keep] > shown.size()) --keep;
  const size_t fed = gen.ids.empty() ? 0 : gen.ids.size() - 1;  // in the cache
  const size_t kept = std::min(keep, fed);
  engine.rewind(uint32_t(prompt_end + kept));
  history.resize(prompt_end + kept);
  std::vector<int32_t> tail(gen.ids.begin() + std::ptrdiff_t(kept), gen.ids.begin() + std::ptrdiff_t(keep));
  const size_t shown_by_keep = gen.bytes_before[keep];
  if (shown.size() > shown_by_keep) {  // part of a token's text was shown: its bytes as plain text
    const std::vector<int32_t> rest = engine.tokenizer().encode(std::string_view(shown).substr(shown_by_keep), false);
    tail.insert(tail.end(), rest.begin(), rest.end());
  }
  tail.insert(tail.end(), close.begin(), close.end());
  for (int32_t id : tail) {
    if (engine.position() >= engine.context_length()) break;
    engine.decode(id);
    history.push_back(id);
  }
}

}  // namespace

std::vector<int32_t> generate(Engine& engine, std::vector<float> logits, const GenerateOptions& o,
                              std::vector<int32_t>& history) {
  // Greedy with no penalty runs the argmax on the GPU and never reads the logits back.
  const bool gpu_greedy = o.sampler.greedy() && !o.sampler.penalizes() && !o.on_logits;
  std::vector<int32_t> out;
  if (o.max_tokens == 0) return out;
  int32_t next = engine.sample(logits, o.sampler, history);
  while (true) {
    out.push_back(next);
    history.push_back(next);
    if (contains(o.stop_ids, next)) break;
    if (o.on_token) o.on_token(next);
    if (out.size() >= o.max_tokens || engine.position() >= engine.context_length()) break;
    if (o.should_stop && o.should_stop()) break;
    if (o.before_decode) o.before_decode();
    if (gpu_greedy) {
      next = engine.decode_greedy(next);
    } else {
      logits = engine.decode(next);
      if (o.on_logits) o.on_logits(logits);
      next = engine.sample(logits, o.sampler, history);
    }
  }
  return out;
}

std::vector<int32_t> default_stop_ids(const Engine& engine) {
  std::vector<int32_t> stops;
  if (engine.config().eos_token_id >= 0) stops.push_back(int32_t(engine.config().eos_token_id));
  if (engine.has_tokenizer() && engine.tokenizer().eos_id() >= 0 && !contains(stops, engine.tokenizer().eos_id())) {
    stops.push_back(engine.tokenizer().eos_id());
  }
  return stops;
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Context: return "context";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "?";
}

TextResult complete_text(Engine& engine, std::vector<int32_t>& cached, std::span<const int32_t> prompt,
                         const TextOptions& options) {
  return complete_text(engine, cached, prompt, options, default_stop_ids(engine), {});
}

TextResult complete_text(Engine& engine, std::vector<int32_t>& cached, std::span<const int32_t> prompt,
                         const TextOptions& options, const std::vector<int32_t>& stop_ids,
                         std::span<const int32_t> close) {
  const Clock::time_point start = Clock::now();
  validate(options);
  if (prompt.empty()) throw Error("the prompt has no tokens", ErrorKind::InvalidArgument);
  if (cached.size() != engine.position()) cached.clear();  // not the caller's record of this cache
  // Reuse the cached prefix, but feed at least one token: its logits start the reply.
  size_t common = 0;
  while (common < cached.size() && common + 1 < prompt.size() && cached[common] == prompt[common]) ++common;
  engine.rewind(uint32_t(common));
  cached.resize(common);
  TextResult result;
  result.prompt_tokens = uint32_t(prompt.size());
  result.prompt_tokens_fed = uint32_t(prompt.size() - common);
  const std::span<const int32_t> rest = prompt.subspan(common);
  std::vector<float> logits = engine.prefill(rest);  // Error (nothing changed) when it does not fit
  result.prefill_seconds = seconds_since(start);
  cached.insert(cached.end(), rest.begin(), rest.end());
  const size_t prompt_end = cached.size();
  const GeneratedText gen = generate_text(engine, std::move(logits), cached, stop_ids, options, result, start);
  keep_shown_text(engine, cached, prompt_end, gen, result.text, close);
  return result;
}

// ---- Chat -------------------------------------------------------------------------------------

ChatSession::ChatSession(Engine& engine) : engine_(engine), format_(engine.tokenizer()) {}

void ChatSession::clear() {
  engine_.reset();
  messages_.clear();
  history_.clear();
  if (!system_.empty()) messages_.push_back({"system", system_});
}

void ChatSession::set_system_prompt(const std::string& text) {
  system_ = text;
  clear();
}

std::string ChatSession::reply(const std::string& user, const SamplerOptions& sampler, uint32_t max_tokens,
                               const std::function<void(std::string_view)>& on_text) {
  TextOptions options;
  options.sampler = sampler;
  options.max_tokens = max_tokens;
  if (on_text) {
    options.on_text = [&](std::string_view text) {
      on_text(text);
      return true;
    };
  }
  return reply(user, options).text;
}

TextResult ChatSession::reply(const std::string& user, const TextOptions& options) {
  const Clock::time_point start = Clock::now();
  validate(options);
  const std::vector<ChatMessage> added = {{"user", user}};
  std::vector<ChatMessage> conversation = messages_;
  conversation.push_back(added[0]);
  // Room for the turn and at least one reply token.
  auto fits = [&](uint64_t position, const std::vector<int32_t>& ids) {
    return position + ids.size() < engine_.context_length();
  };

  // Only the new turn's text when the template extends what the cache holds; else the whole
  // conversation again; else (too long) a new conversation that starts with this turn.
  restarted_ = false;
  // Messages are user text: format_.encode keeps any special-token text in them plain.
  const std::optional<ChatPrompt> new_turn = format_.render_new_turns(messages_, added, true);
  std::vector<int32_t> ids = new_turn ? format_.encode(*new_turn) : std::vector<int32_t>{};
  if (!new_turn || !fits(engine_.position(), ids)) {
    clear();  // the cache no longer matches the messages, so they go too until re-fed
    ids = format_.encode(format_.prompt(conversation, true));
    if (!fits(0, ids)) {
      restarted_ = true;
      conversation = added;
      if (!system_.empty()) conversation.insert(conversation.begin(), {"system", system_});
      ids = format_.encode(format_.prompt(conversation, true));
    }
  }
  TextResult result;
  result.prompt_tokens = uint32_t(history_.size() + ids.size());
  result.prompt_tokens_fed = uint32_t(ids.size());
  std::vector<float> logits = engine_.prefill(ids);  // Error (nothing changed) if the turn alone is too long
  result.prefill_seconds = seconds_since(start);
  messages_ = conversation;
  history_.insert(history_.end(), ids.begin(), ids.end());
  const size_t prompt_end = history_.size();

  const GeneratedText gen = generate_text(engine_, std::move(logits), history_, format_.stop_ids(), options, result, start);
  // The turn is closed with the template's first stop id (<|turn_end|>), as the next render shows it.
  std::vector<int32_t> close;
  if (!format_.stop_ids().empty()) close.push_back(format_.stop_ids().front());
  keep_shown_text(engine_, history_, prompt_end, gen, result.text, close);
  messages_.push_back({"assistant", result.text});
  return result;
}

}  // namespace megrez
