#pragma once
// A small, strict renderer for the Jinja subset that chat templates use, configured as
// Hugging Face's apply_chat_template configures Jinja (trim_blocks, lstrip_blocks, one
// trailing newline of the template dropped).
//
// Supported: text, {{ expr }}, {# comments #}, whitespace control ({%- -%} {{- -}}),
// {% if %}/{% elif %}/{% else %}/{% endif %}, {% for x in xs %}/{% endfor %} with loop.index,
// loop.index0, loop.first, loop.last, loop.length, {% set name = expr %} (scoped to the loop
// body as in Jinja); expressions: string / integer / true / false / none literals, list
// literals, names, a.b, a['b'], a[-1], a[1:], + - % on integers, + and ~ on strings,
// == != < > <= >=, in / not in, and / or / not, `x if c else y`, tests `is [not]
// defined / undefined / none / string`, filters trim, strip, length, lower, upper, methods
// .strip() .lstrip() .rstrip() .lower() .upper() .startswith(s) .endswith(s), and
// raise_exception(msg).
// Anything else throws jinja::Unsupported, at parse time where it can be seen then.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace megrez::jinja {

// The template uses something this renderer does not implement (or is not valid Jinja).
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // small maps, insertion order
struct Undefined {
  bool operator==(const Undefined&) const = default;
};

struct Value {
  std::variant<Undefined, std::nullptr_t, bool, int64_t, std::string, Array, Object> data;

  Value() = default;
  Value(std::nullptr_t) : data(nullptr) {}
  Value(bool b) : data(b) {}
  Value(int64_t i) : data(i) {}
  Value(std::string s) : data(std::move(s)) {}
  Value(const char* s) : data(std::string(s)) {}
  Value(Array a) : data(std::move(a)) {}
  Value(Object o) : data(std::move(o)) {}

  template <class T>
  bool is() const {
    return std::holds_alternative<T>(data);
  }
  template <class T>
  const T& as() const {
    return std::get<T>(data);
  }
  // Member `key` of an object; nullptr when absent or not an object.
  const Value* find(std::string_view key) const;
};

class Template {
 public:
  // Parses `source`; throws Unsupported naming the first construct outside the subset.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the top-level variables in `context`. Throws Unsupported on operations the
  // subset lacks (e.g. adding a string to a number) and megrez::Error for raise_exception.
  std::string render(const Object& context) const;

  struct Program;  // the parsed template (chat_template_ast.h)

 private:
  std::unique_ptr<Program> program_;
};

}  // namespace megrez::jinja
