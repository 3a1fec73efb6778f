// megrez-chat's conversation database, settings and export, without a window: migrations,
// damaged and foreign files, unwritable folders, search, and what export writes.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/megrez-chat/chat_settings.h"
#include "apps/megrez-chat/chat_store.h"
#include "apps/megrez-chat/export.h"

namespace fs = std::filesystem;
using namespace megrez::chat;

namespace {

// A fresh folder per test case, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("megrez-chat-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

int64_t user_version(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  const int64_t v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return v;
}

std::vector<std::string> titles(ChatStore& store, std::string_view search) {
  std::vector<std::string> out;
  for (const ConversationSummary& c : store.list(search)) out.push_back(c.title);
  return out;
}

}  // namespace

TEST_CASE("chat store: an empty file is migrated to the current schema and keeps what is written") {
  TempDir dir;
  const std::string path = dir.file("chats.db");
  write_all(path, "");
  int64_t id = 0;
  {
    ChatStore store(path);
    CHECK(store.persistent());
    CHECK(store.notice().empty());
    CHECK(store.list().empty());
    id = store.create("Solomon", R"({"temperature":0})");
    REQUIRE(id > 0);
    CHECK(store.append(id, "user", "Who was the father of Solomon?") > 0);
    CHECK(store.append(id, "assistant", "David.", R"({"tokens":3})") > 0);
  }
  CHECK(user_version(path) == ChatStore::kSchemaVersion);
  ChatStore again(path);  // a restart finds it
  const Conversation c = again.load(id);
  CHECK(c.title == "Solomon");
  CHECK(c.settings == R"({"temperature":0})");
  REQUIRE(c.messages.size() == 2);
  CHECK(c.messages[0].role == "user");
  CHECK(c.messages[0].content == "Who was the father of Solomon?");
  CHECK(c.messages[1].content == "David.");
  CHECK(c.messages[1].stats == R"({"tokens":3})");
  CHECK(again.load(id + 100).id == 0);  // an unknown id: an empty conversation, no throw
}

TEST_CASE("chat store: a file that is not a database is moved aside, never deleted, and a new one started") {
  TempDir dir;
  const std::string path = dir.file("chats.db");
  const std::string garbage(4096, '\x5a');
  write_all(path, garbage);
  ChatStore store(path);
  CHECK(store.persistent());
  CHECK(store.notice().find("damaged") != std::string::npos);
  std::string aside;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    if (entry.path().filename().string().rfind("chats.db.corrupt-", 0) == 0) aside = entry.path().string();
  }
  REQUIRE(!aside.empty());
  CHECK(store.notice().find(aside) != std::string::npos);
  CHECK(read_all(aside) == garbage);  // the user's bytes, untouched
  CHECK(store.create("fresh", "{}") > 0);
  CHECK(titles(store, "") == std::vector<std::string>{"fresh"});
}

TEST_CASE("chat store: a truncated database fails its check and is moved aside") {
  TempDir dir;
  const std::string path = dir.file("chats.db");
  {
    ChatStore store(path);
    const int64_t id = store.create("long", "{}");
    for (int i = 0; i < 200; ++i) store.append(id, "user", std::string(500, char('a' + i % 26)));
  }
  // Fold the WAL into the file, then cut the file in half.
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  const std::string bytes = read_all(path);
  REQUIRE(bytes.size() > 8192);
  write_all(path, bytes.substr(0, bytes.size() / 2));
  ChatStore store(path);
  CHECK(store.notice().find("moved to") != std::string::npos);
  CHECK(store.persistent());
  CHECK(store.list().empty());
}

TEST_CASE("chat store: a folder that cannot be written leaves a working store that does not save") {
  TempDir dir;
  write_all(dir.file("not-a-folder"), "x");
  // A file where the folder should be (root may write anywhere, so permissions alone would not
  // stop this test's user), and a folder the kernel refuses.
  for (const std::string& path : {dir.file("not-a-folder/chats.db"), std::string("/proc/megrez-chat-test/chats.db")}) {
    CAPTURE(path);
    ChatStore store(path);
    CHECK_FALSE(store.persistent());
    CHECK(store.notice().find("will not be saved") != std::string::npos);
    const int64_t id = store.create("in memory", "{}");
    REQUIRE(id > 0);
    CHECK(store.append(id, "user", "still chats") > 0);
    CHECK(store.load(id).messages.size() == 1);
  }
  CHECK(read_all(dir.file("not-a-folder")) == "x");
}

TEST_CASE("chat store: a database from a newer app is shown but never written") {
  TempDir dir;
  const std::string path = dir.file("chats.db");
  int64_t id = 0;
  {
    ChatStore store(path);
    id = store.create("from the future", "{}");
    store.append(id, "user", "hello");
  }
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "PRAGMA user_version = 99; PRAGMA wal_checkpoint(TRUNCATE);", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    sqlite3_close(db);
  }
  ChatStore store(path);
  CHECK(store.notice().find("newer") != std::string::npos);
  CHECK_FALSE(store.persistent());
  CHECK(store.load(id).messages.size() == 1);
  CHECK(store.create("new", "{}") == 0);
  CHECK(store.append(id, "user", "more") == 0);
  store.remove(id);
  store.rename(id, "renamed");
  CHECK(store.load(id).title == "from the future");
  CHECK(user_version(path) == 99);
}

TEST_CASE("chat store: search finds words, parts of words, Chinese and titles; any text is safe") {
  ChatStore store(":memory:");
  const int64_t a = store.create("Genealogy", "{}");
  store.append(a, "user", "Who was the father of Solomon?");
  store.append(a, "assistant", "David begat Solomon.");
  const int64_t b = store.create("中文对话", "{}");
  store.append(b, "user", "所罗门的父亲是谁？");
  store.append(b, "assistant", "大卫。");
  const int64_t c = store.create("Percent", "{}");
  store.append(c, "user", "100% sure, isn't it \"quoted\"? AND OR NOT * _");

  using V = std::vector<std::string>;
  CHECK(titles(store, "solomon") == V{"Genealogy"});      // case-insensitive
  CHECK(titles(store, "lomo") == V{"Genealogy"});         // inside a word (trigrams)
  CHECK(titles(store, "罗门的父") == V{"中文对话"});         // Chinese has no spaces between words
  CHECK(titles(store, "大卫") == V{"中文对话"});            // two characters: no trigram, still found
  CHECK(titles(store, "对话") == V{"中文对话"});            // the title
  CHECK(titles(store, "genea") == V{"Genealogy"});
  CHECK(titles(store, "100%") == V{"Percent"});           // % is literal
  CHECK(titles(store, "_") == V{"Percent"});              // so is _
  CHECK(titles(store, "\"quoted\"") == V{"Percent"});     // quotes inside the phrase
  CHECK(titles(store, "AND OR NOT").size() == 1);         // FTS5 operators are text
  CHECK(titles(store, "nothing like this").empty());
  CHECK(titles(store, "   ").size() == 3);                // blank: everything
  CHECK(store.notice().empty());

  store.remove(a);  // messages go with it, and out of the index
  CHECK(titles(store, "solomon").empty());
  CHECK(store.load(a).id == 0);
}

TEST_CASE("chat store: truncate keeps the first messages; rename, settings, models and app settings persist") {
  TempDir dir;
  const std::string path = dir.file("chats.db");
  int64_t id = 0;
  {
    ChatStore store(path);
    id = store.create("t", "{}");
    for (int i = 0; i < 5; ++i) store.append(id, i % 2 ? "assistant" : "user", "m" + std::to_string(i));
    store.truncate(id, 2);  // edit of the third message: it and what follows go
    store.rename(id, "renamed");
    store.save_settings(id, R"({"seed":7})");
    store.remember_model("/a");
    store.remember_model("/b");
    store.remember_model("/a");  // used again: first
    store.set_setting("theme", "light");
  }
  ChatStore store(path);
  const Conversation c = store.load(id);
  REQUIRE(c.messages.size() == 2);
  CHECK(c.messages[1].content == "m1");
  CHECK(c.title == "renamed");
  CHECK(c.settings == R"({"seed":7})");
  CHECK(store.recent_models() == std::vector<std::string>{"/a", "/b"});
  CHECK(store.setting("theme") == "light");
  CHECK(store.setting("missing", "fallback") == "fallback");
}

TEST_CASE("chat settings: round trip; hostile or malformed values keep defaults or are clamped") {
  ChatSettings s;
  s.system_prompt = "Answer briefly.";
  s.temperature = 0;
  s.top_k = 7;
  s.seed = 42;
  s.max_tokens = 99;
  const ChatSettings back = ChatSettings::from_json(s.to_json(), ChatSettings{});
  CHECK(back.system_prompt == "Answer briefly.");
  CHECK(back.temperature == 0);
  CHECK(back.top_k == 7);
  CHECK(back.seed == 42);
  CHECK(back.max_tokens == 99);

  const ChatSettings defaults;
  const ChatSettings hostile = ChatSettings::from_json(
      R"({"temperature":1e300,"top_k":-5e20,"top_p":"high","seed":-9,"max_tokens":1e12,"system_prompt":3})", defaults);
  CHECK(hostile.temperature == 5);
  CHECK(hostile.top_k == 0);
  CHECK(hostile.top_p == defaults.top_p);
  CHECK(hostile.seed == -1);
  CHECK(hostile.max_tokens == 32768);
  CHECK(hostile.system_prompt.empty());
  CHECK(ChatSettings::from_json("not json", defaults).max_tokens == defaults.max_tokens);
  CHECK(ChatSettings::from_json("[1,2]", defaults).top_k == defaults.top_k);
}

TEST_CASE("export: Markdown and JSON say what the conversation holds; odd text and paths are handled") {
  Conversation c;
  c.id = 1;
  c.title = "Solomon 所罗门";
  c.settings = R"({"temperature":0})";
  c.messages = {{1, "user", "Who was the father of Solomon?", "{}"},
                {2, "assistant", "David.\xff", R"({"tokens":3,"reply_tps":20.5})"}};
  const std::string md = conversation_markdown(c, "Be brief.");
  CHECK(md == "# Solomon 所罗门\n\n**System:** Be brief.\n\n## You\n\nWho was the father of Solomon?\n\n"
              "## Assistant\n\nDavid.\xff\n\n");
  const nlohmann::json j = nlohmann::json::parse(conversation_json(c, "Be brief."));
  CHECK(j["title"] == "Solomon 所罗门");
  CHECK(j["settings"]["temperature"] == 0);
  REQUIRE(j["messages"].size() == 3);
  CHECK(j["messages"][0] == nlohmann::json({{"role", "system"}, {"content", "Be brief."}}));
  CHECK(j["messages"][1]["content"] == "Who was the father of Solomon?");
  CHECK(j["messages"][2]["content"] == "David.\xEF\xBF\xBD");  // invalid UTF-8 replaced, not thrown on
  CHECK(j["messages"][2]["stats"]["tokens"] == 3);
  CHECK_FALSE(j["messages"][1].contains("stats"));

  TempDir dir;
  CHECK(write_file_atomically(dir.file("out.md"), md).empty());
  CHECK(read_all(dir.file("out.md")) == md);
  CHECK_FALSE(fs::exists(dir.file("out.md.part")));
  write_all(dir.file("file"), "x");
  CHECK(write_file_atomically(dir.file("file/out.md"), md).find("cannot write") == 0);

  CHECK(file_stem("Who was the father of Solomon?") == "Who-was-the-father-of-Solomon");
  CHECK(file_stem("所罗门的父亲") == "所罗门的父亲");
  CHECK(file_stem("../../etc/passwd") == "etc-passwd");
  CHECK(file_stem("???") == "conversation");
  CHECK(file_stem(std::string(100, 'a')).size() == 60);
  CHECK(file_stem("\xe6\x89") == "conversation");  // a cut character is dropped
}
