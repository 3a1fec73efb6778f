#include "runtime/engine/generate.h"

#include <algorithm>

#include "loader/error.h"
#include "runtime/engine/text_stream.h"

namespace megrez {

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

}  // namespace

std::vector<int32_t> generate(Engine& engine, std::vector<float> logits, const GenerateOptions& o,
                              std::vector<int32_t>& history) {
  // Greedy with no penalty runs the argmax on the GPU and never reads the logits back.
  const bool gpu_greedy = o.sampler.greedy() && o.sampler.repeat_penalty == 1.0f && !o.on_logits;
  std::vector<int32_t> out;
  if (o.max_tokens == 0) return out;
  int32_t next = engine.sample(logits, o.sampler, history);
  while (true) {
    out.push_back(next);
    history.push_back(next);
    if (contains(o.stop_ids, next)) break;
    if (o.on_token) o.on_token(next);
    if (out.size() >= o.max_tokens || engine.position() >= engine.context_length()) break;
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

// ---- Chat -------------------------------------------------------------------------------------

ChatSession::ChatSession(Engine& engine) : engine_(engine), format_(engine.tokenizer()) {}

void ChatSession::clear() {
  engine_.reset();
  messages_.clear();
  history_.clear();
}

std::string ChatSession::reply(const std::string& user, const SamplerOptions& sampler, uint32_t max_tokens,
                               const std::function<void(std::string_view)>& on_text) {
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
      ids = format_.encode(format_.prompt(conversation, true));
    }
  }
  std::vector<float> logits = engine_.prefill(ids);  // Error (nothing changed) if the turn alone is too long
  messages_ = conversation;
  history_.insert(history_.end(), ids.begin(), ids.end());

  Utf8Stream utf8;
  const Tokenizer& tokenizer = engine_.tokenizer();
  GenerateOptions options;
  options.sampler = sampler;
  options.max_tokens = max_tokens;
  options.stop_ids = format_.stop_ids();
  options.on_token = [&](int32_t id) {
    if (on_text && !tokenizer.is_special(id)) on_text(utf8.push(tokenizer.token_text(id)));
  };
  std::vector<int32_t> reply = generate(engine_, std::move(logits), options, history_);
  if (on_text) on_text(utf8.flush());

  // The cache holds every reply token but the last. A stop token is not kept: the turn is
  // closed with the template's first stop id (<|turn_end|>), as the next render shows it.
  const bool stopped = !reply.empty() && format_.is_stop(reply.back());
  if (!reply.empty()) history_.pop_back();
  if (stopped) reply.pop_back();
  auto feed = [&](int32_t id) {
    if (engine_.position() >= engine_.context_length()) return;
    engine_.decode(id);
    history_.push_back(id);
  };
  if (!stopped && !reply.empty()) feed(reply.back());
  if (!format_.stop_ids().empty()) feed(format_.stop_ids().front());
  std::string text = engine_.detokenize(reply);
  messages_.push_back({"assistant", text});
  return text;
}

}  // namespace megrez
