// The Jinja-subset renderer. Expected outputs of chat_expected.json come from the real
// Jinja2 configured as Hugging Face configures it (make_chat_expected.py).
#include <doctest/doctest.h>

#include "loader/chat/chat_template.h"
#include "loader/error.h"
#include "tokenizer_fixtures.h"

using megrez::jinja::Array;
using megrez::jinja::Object;
using megrez::jinja::Template;
using megrez::jinja::Unsupported;
using megrez::jinja::Value;
using namespace tokenizer_test;

namespace {

Value from_json(const nlohmann::json& j) {
  if (j.is_null()) return Value(nullptr);
  if (j.is_boolean()) return Value(j.get<bool>());
  if (j.is_number_integer()) return Value(j.get<int64_t>());
  if (j.is_string()) return Value(j.get<std::string>());
  if (j.is_array()) {
    Array a;
    for (const auto& item : j) a.push_back(from_json(item));
    return Value(std::move(a));
  }
  REQUIRE(j.is_object());
  Object o;
  for (const auto& [k, v] : j.items()) o.emplace_back(k, from_json(v));
  return Value(std::move(o));
}

std::string render(std::string_view source, const Object& context = {}) {
  return Template(source).render(context);
}

}  // namespace

TEST_CASE("chat templates render exactly as Jinja2 does") {
  nlohmann::json expected = read_json(kDir + "chat_expected.json");
  REQUIRE(expected["cases"].size() == 64);
  for (const auto& c : expected["cases"]) {
    INFO("template " << c["name"].get<std::string>() << ", context " << c["context"].dump());
    Template t(c["template"].get<std::string>());
    Object context = from_json(c["context"]).as<Object>();
    if (c["error"].is_null()) {
      CHECK(t.render(context) == c["output"].get<std::string>());
    } else if (c["error"] == "raised") {
      CHECK_THROWS_WITH_AS(t.render(context),
                           ("chat template: " + c["message"].get<std::string>()).c_str(),
                           megrez::Error);
    } else {
      CHECK_THROWS_AS(t.render(context), Unsupported);
    }
  }
}

TEST_CASE("valid Jinja outside the subset is refused, never misrendered") {
  nlohmann::json expected = read_json(kDir + "chat_expected.json");
  Object context = {
      {"messages", from_json(nlohmann::json::parse(R"([{"role": "user", "content": "Hi"}])"))}};
  for (const auto& source : expected["unsupported"]) {
    INFO(source.get<std::string>());
    CHECK_THROWS_AS(render(source.get<std::string>(), context), Unsupported);
  }
}

TEST_CASE("renderer: hand-checked basics") {
  CHECK(render("plain text") == "plain text");
  CHECK(render("ends with newline\n") == "ends with newline");  // Jinja drops one final newline
  CHECK(render("two\n\n") == "two\n");
  CHECK(render("{{ 'a' + 'b' ~ 3 }}") == "ab3");
  CHECK(render("{{ x }}", {{"x", Value("X")}}) == "X");
  CHECK(render("[{{ missing }}]") == "[]");
  CHECK(render("{% for i in [1, 2, 3] %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}") ==
        "1,2,3");
  CHECK(render("{% for i in ['a', 'b'] %}{{ loop.index0 }}{{ loop.first }}{{ loop.revindex }}{% "
               "endfor %}") == "0True21False1");
  CHECK(render("{% if 0 %}a{% elif '' %}b{% elif [0] %}c{% else %}d{% endif %}") == "c");
  CHECK(render("{{ 'y' if none else 'n' }}{{ 'y' if '' }}{{ 'z' if 'z' }}") == "nz");
  CHECK(render("{{ '\\u00e9\\x41\\U0001F642' }}") == "\u00e9A\U0001F642");
  CHECK(render("{{ '\\n' | length }}{{ 'tab\\there' }}") == "1tab\there");
  CHECK(render("{{ \"it's\" }}{{ 'say \"hi\"' }}{{ 'a\\qb' }}") == "it'ssay \"hi\"a\\qb");
  CHECK(render("{% set x = 1 %}{% set x = x + 1 %}{{ x }}") == "2");
  CHECK(render("{{ -7 % 3 }} {{ 7 % -3 }}") == "2 -2");  // Python's modulo
  CHECK(render("{{ [1, 2, 3][-1] }}{{ [1, 2, 3][1:] | length }}{{ [1, 2, 3][:-1][-1] }}") == "322");
  CHECK_THROWS_WITH_AS(render("{{ raise_exception('no ' + 'way') }}"), "chat template: no way",
                       megrez::Error);
}

TEST_CASE("renderer: whitespace control, trim_blocks and lstrip_blocks") {
  CHECK(render("a  {{- 'b' -}}  \n c") == "abc");
  CHECK(render("{% if true %}\nx\n{% endif %}\ny") == "x\ny");
  CHECK(render("    {% if true %}x{% endif %}") == "x");
  CHECK(render("a {% if true %}x{% endif %}") == "a x");  // not alone on its line: kept
  CHECK(render("  {%+ if true %}x{% endif %}") == "  x");
  CHECK(render("  {{ 'x' }}\n") == "  x");  // lstrip_blocks leaves {{ }} alone
  CHECK(render("a\n  {# note #}\nb") == "a\nb");
  CHECK(render("a {#- note -#}   b") == "ab");
}

TEST_CASE("renderer: broken templates are Unsupported") {
  for (const char* source : {"{{ 'unterminated }}",
                             "{% if true %}no end",
                             "{% for x in y %}",
                             "{{ a b }}",
                             "{% endif %}",
                             "{% else %}",
                             "{{ }}",
                             "{% %}",
                             "{{ 1 +  }}",
                             "{% if a %}{% else %}{% else %}{% endif %}",
                             "{# open",
                             "{{ x",
                             "{{ 'a' @ 'b' }}",
                             "{% set a.b = 1 %}",
                             "{{ x[::2] }}",
                             "{{ f(1) }}",
                             "{{ 'x'.nope() }}",
                             "{{ x | trim(1) }}",
                             "{{ x is odd }}",
                             "{{ 99999999999999999999 }}"}) {
    INFO(source);
    CHECK_THROWS_AS(render(source), Unsupported);
  }
}

TEST_CASE("renderer: hostile templates stop instead of running away") {
  std::string deep(500, '(');
  CHECK_THROWS_AS(render("{{ " + deep + "1" + std::string(500, ')') + " }}"), Unsupported);
  std::string nested;
  for (int i = 0; i < 30; ++i) nested += "{% for a in [1, 2] %}";
  nested += "x";
  for (int i = 0; i < 30; ++i) nested += "{% endfor %}";
  CHECK_THROWS_AS(render(nested), Unsupported);
  std::string doubling = "{% set s = 'ab' %}";
  for (int i = 0; i < 40; ++i) doubling += "{% set s = s + s %}";
  CHECK_THROWS_AS(render(doubling), Unsupported);
  std::string growing = "{% set l = [1] %}";
  for (int i = 0; i < 40; ++i) growing += "{% set l = l + l %}";
  CHECK_THROWS_AS(render(growing), Unsupported);
}
