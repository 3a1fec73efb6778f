// Generation loops shared by the front ends: generate() (GPU greedy vs host sampling, stop
// ids, limits) and ChatSession (turns appended to the KV cache, restart when full).
#include <doctest/doctest.h>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "runtime/engine/generate.h"
#include "runtime/engine/text_stream.h"

using namespace megrez;
using namespace megrez::test;

TEST_CASE_FIXTURE(GpuTest, "generate: GPU greedy and host greedy give the same tokens; stop ids end generation") {
  auto engine = load_engine(kTinyModelDir, engine_options(64));
  const std::vector<int32_t> prompt = engine->tokenize("In the beginning God created");
  GenerateOptions gpu;
  gpu.max_tokens = 12;
  std::vector<int32_t> history = prompt;
  const std::vector<int32_t> a = generate(*engine, engine->prefill(prompt), gpu, history);
  CHECK(a.size() == 12);
  CHECK(history.size() == prompt.size() + 12);
  CHECK(engine->position() == prompt.size() + 11);  // the last token is not fed back

  // The host path (on_logits set) reads every fed token's logits back and picks the same.
  engine->reset();
  GenerateOptions host = gpu;
  size_t rows = 0;
  host.on_logits = [&](std::span<const float> logits) {
    CHECK(logits.size() == size_t(engine->config().vocab_size));
    ++rows;
  };
  std::vector<int32_t> tokens_seen;
  host.on_token = [&](int32_t id) { tokens_seen.push_back(id); };
  history = prompt;
  CHECK(generate(*engine, engine->prefill(prompt), host, history) == a);
  CHECK(rows == 11);
  CHECK(tokens_seen == a);

  // A stop id ends generation and is returned but not passed to on_token.
  engine->reset();
  GenerateOptions stop = host;
  stop.on_logits = nullptr;
  stop.stop_ids = {a[3]};
  tokens_seen.clear();
  history = prompt;
  const std::vector<int32_t> stopped = generate(*engine, engine->prefill(prompt), stop, history);
  const auto first_stop = std::find(a.begin(), a.end(), a[3]) - a.begin();
  CHECK(stopped == std::vector<int32_t>(a.begin(), a.begin() + first_stop + 1));
  CHECK(tokens_seen.size() == stopped.size() - 1);
}

TEST_CASE_FIXTURE(GpuTest, "ChatSession: later turns extend the KV cache, which equals a fresh prefill of its tokens") {
  auto engine = load_engine(kTinyModelDir, engine_options(256));
  ChatSession chat(*engine);
  SamplerOptions greedy;
  std::string streamed;
  const std::string first = chat.reply("Who is God?", greedy, 10, [&](std::string_view t) { streamed += t; });
  CHECK(streamed == first);
  CHECK(engine->position() == chat.tokens().size());
  const size_t after_first = chat.tokens().size();

  const std::string second = chat.reply("And who is Moses?", greedy, 10);
  CHECK_FALSE(chat.restarted());
  REQUIRE(chat.messages().size() == 4);
  CHECK(chat.messages()[1].content == first);
  CHECK(chat.messages()[3].content == second);
  CHECK(engine->position() == chat.tokens().size());
  CHECK(chat.tokens().size() > after_first);

  // The cache rows are exactly tokens(): one more token fed to the session's engine gives the
  // logits a fresh engine computes from tokens() + that token.
  const int32_t probe = chat.tokens().front();
  std::vector<int32_t> sequence = chat.tokens();
  sequence.push_back(probe);
  auto fresh = load_engine(kTinyModelDir, engine_options(256));
  const std::vector<float> want = fresh->prefill(sequence);
  const std::vector<float> got = engine->decode(probe);
  CHECK(compare_logits(got, want, want.size()).relative() <= 1e-5);
}

TEST_CASE_FIXTURE(GpuTest, "ChatSession: a conversation longer than the context starts over") {
  auto engine = load_engine(kTinyModelDir, engine_options(48));
  ChatSession chat(*engine);
  SamplerOptions greedy;
  chat.reply("Who is God?", greedy, 16);  // 14 prompt tokens and the reply
  CHECK_FALSE(chat.restarted());
  // 35 tokens: the turn fits the context alone, not after the first one.
  chat.reply("And who is Moses, the servant of the Lord, the son of Amram, whom the LORD knew face to face?", greedy, 8);
  CHECK(chat.restarted());
  CHECK(chat.messages().size() == 2);
  CHECK(engine->position() == chat.tokens().size());
}

TEST_CASE("StopSequences: nothing of a stop sequence is shown, split across pieces or not") {
  StopSequences stops({"END", "<|x|>"});
  std::string shown = stops.push("Hello E");  // "E" could begin END: held back
  CHECK(shown == "Hello ");
  shown += stops.push("ND and more");
  CHECK(stops.matched());
  CHECK(shown == "Hello ");
  CHECK(stops.push("later") == "");
  CHECK(stops.flush() == "");

  StopSequences other({"END"});
  std::string text = other.push("the EN");
  text += other.push("emy");  // "ENemy": no match, the held "EN" comes out
  text += other.flush();
  CHECK(text == "the ENemy");
  CHECK_FALSE(other.matched());

  StopSequences earliest({"b", "abc"});  // the earliest match wins ("abc" at 2), not the first listed
  CHECK(earliest.push("xxabc") == "xx");
  StopSequences none({});
  CHECK(none.push("anything") == "anything");
}

TEST_CASE_FIXTURE(GpuTest, "ChatSession: a reply cut by a stop sequence keeps exactly the shown text in the cache") {
  auto engine = load_engine(kTinyModelDir, engine_options(256));
  ChatSession chat(*engine);
  TextOptions options;
  options.max_tokens = 24;
  const std::string question = "What does John 3:16 say?";  // a verse-length answer
  const TextResult full = chat.reply(question, options);
  REQUIRE(full.text.size() > 12);
  chat.clear();

  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  options.stop = {stop};
  std::string streamed;
  options.on_text = [&](std::string_view piece) {
    streamed += piece;
    return true;
  };
  const TextResult cut = chat.reply(question, options);
  CHECK(cut.text == full.text.substr(0, full.text.find(stop)));
  CHECK(streamed == cut.text);
  CHECK(cut.finish == FinishReason::Stop);
  CHECK(chat.messages().back().content == cut.text);
  // The cache holds the prompt, exactly the shown text, then the end of the turn.
  CHECK(chat.tokens().size() == engine->position());
  const int32_t turn_end = engine->tokenize("<|turn_end|>", true).back();
  CHECK(chat.tokens().back() == turn_end);
  const std::vector<int32_t> reply_ids(chat.tokens().begin() + cut.prompt_tokens, chat.tokens().end() - 1);
  CHECK(engine->detokenize(reply_ids) == cut.text);

  // Cancelled by the callback after two pieces: the same rule.
  chat.clear();
  options.stop.clear();
  int pieces = 0;
  options.on_text = [&](std::string_view) { return ++pieces < 2; };
  const TextResult cancelled = chat.reply(question, options);
  CHECK(cancelled.finish == FinishReason::Cancelled);
  CHECK(full.text.rfind(cancelled.text, 0) == 0);
  const std::vector<int32_t> kept(chat.tokens().begin() + cancelled.prompt_tokens, chat.tokens().end() - 1);
  CHECK(engine->detokenize(kept) == cancelled.text);
}

TEST_CASE_FIXTURE(GpuTest, "complete_text: another sequence used between two tokens changes nothing; chat close; reseed") {
  // The server's slots: several sequences take turns on one engine between two generated
  // tokens (TextOptions::between_tokens), and a chat reply ends with its end of turn fed.
  auto engine = load_engine(kTinyModelDir, engine_options(128));
  const ChatFormat format(engine->tokenizer());
  auto prompt_of = [&](const std::string& user) {
    return format.encode(format.prompt(std::vector<ChatMessage>{{"user", user}}, true));
  };
  const std::vector<int32_t> pa = prompt_of("What does John 3:16 say?"), pb = prompt_of("Who was the father of Solomon?");
  const std::vector<int32_t> close = {format.stop_ids().front()};
  TextOptions options;
  options.max_tokens = 12;
  options.stop = {"zzzz"};  // not in the text: only held back and flushed

  std::vector<int32_t> cached_a, cached_b;
  const TextResult alone_a = complete_text(*engine, cached_a, pa, options, format.stop_ids(), close);
  CHECK(cached_a.size() == engine->position());
  CHECK(cached_a.back() == close[0]);
  CHECK(std::vector<int32_t>(cached_a.begin(), cached_a.begin() + std::ptrdiff_t(pa.size())) == pa);
  engine->reset();
  const TextResult alone_b = complete_text(*engine, cached_b, pb, options, format.stop_ids(), close);
  REQUIRE(alone_a.completion_tokens > 2);

  // A again from scratch on sequence 0, while sequence 1 is fed B's prompt a token at a time
  // between A's tokens.
  const Engine::SequenceId a = engine->selected_sequence(), b = engine->add_sequence();
  engine->reset();
  cached_a.clear();
  cached_b.clear();
  size_t fed = 0;
  options.between_tokens = [&] {
    if (fed + 1 >= pb.size()) return;
    engine->select_sequence(b);
    engine->decode(pb[fed]);
    cached_b.push_back(pb[fed++]);
    engine->select_sequence(a);
  };
  const TextResult interleaved_a = complete_text(*engine, cached_a, pa, options, format.stop_ids(), close);
  CHECK(interleaved_a.text == alone_a.text);
  CHECK(fed > 0);
  options.between_tokens = nullptr;
  engine->select_sequence(b);
  const TextResult continued_b = complete_text(*engine, cached_b, pb, options, format.stop_ids(), close);
  CHECK(continued_b.prompt_tokens_fed == pb.size() - fed);
  CHECK(continued_b.text == alone_b.text);

  // A seeded request repeats whatever ran on the sequence before.
  options.sampler.temperature = 1.0f;
  auto seeded = [&] {
    complete_text(*engine, cached_b, pa, options, format.stop_ids(), close);  // draws from the generator
    engine->reseed_sampler(99);
    return complete_text(*engine, cached_b, pb, options, format.stop_ids(), close).text;
  };
  CHECK(seeded() == seeded());
}
