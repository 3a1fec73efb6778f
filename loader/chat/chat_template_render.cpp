// Chat template renderer: walks the parsed template with Python/Jinja value semantics.
#include <algorithm>
#include <optional>

#include "loader/chat/chat_template_ast.h"
#include "loader/error.h"

namespace megrez::jinja {

const Value* Value::find(std::string_view key) const {
  if (!is<Object>()) return nullptr;
  for (const auto& [k, v] : as<Object>())
    if (k == key) return &v;
  return nullptr;
}

namespace {

// Limits that keep a hostile template (nested loops over list literals, a string doubled in
// every step) from running forever: steps count every node run and every expression
// evaluated; bytes count every value a step produces or copies, since a step that copies a
// 16 MiB string is not one unit of work.
constexpr size_t kMaxSteps = 1'000'000;
constexpr size_t kMaxOutput = 16u << 20;
constexpr size_t kMaxBytes = 256u << 20;
constexpr size_t kMaxListItems = 1u << 16;
constexpr std::string_view kSpaces = " \t\n\r\f\v";

const char* type_name(const Value& v) {
  constexpr const char* names[] = {"undefined", "none", "boolean", "integer",
                                   "string",    "list", "mapping"};
  return names[v.data.index()];
}

[[noreturn]] void type_error(const std::string& what, const Value& a) {
  throw Unsupported(what + " of type " + type_name(a) + " is not supported");
}

bool truthy(const Value& v) {
  return std::visit(
      [](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Undefined> || std::is_same_v<T, std::nullptr_t>)
          return false;
        else if constexpr (std::is_same_v<T, bool>)
          return x;
        else if constexpr (std::is_same_v<T, int64_t>)
          return x != 0;
        else
          return !x.empty();
      },
      v.data);
}

// What {{ v }} and `~` print, as Python's str() would.
std::string to_text(const Value& v) {
  if (v.is<std::string>()) return v.as<std::string>();
  if (v.is<Undefined>()) return "";
  if (v.is<std::nullptr_t>()) return "None";
  if (v.is<bool>()) return v.as<bool>() ? "True" : "False";
  if (v.is<int64_t>()) return std::to_string(v.as<int64_t>());
  type_error("printing", v);
}

bool equal(const Value& a, const Value& b) {
  // Python: True == 1.
  auto number = [](const Value& v) -> std::optional<int64_t> {
    if (v.is<int64_t>()) return v.as<int64_t>();
    if (v.is<bool>()) return v.as<bool>() ? 1 : 0;
    return std::nullopt;
  };
  if (auto x = number(a), y = number(b); x && y) return *x == *y;
  if (a.data.index() != b.data.index()) return false;
  if (a.is<std::string>()) return a.as<std::string>() == b.as<std::string>();
  if (a.is<Array>()) {
    const Array &x = a.as<Array>(), &y = b.as<Array>();
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), equal);
  }
  if (a.is<Object>()) {
    const Object &x = a.as<Object>(), &y = b.as<Object>();
    if (x.size() != y.size()) return false;
    for (const auto& [k, v] : x) {
      const Value* other = b.find(k);
      if (!other || !equal(v, *other)) return false;
    }
    return true;
  }
  return true;  // undefined == undefined, none == none
}

std::string strip(std::string s, bool left, bool right) {
  if (right) s.erase(s.find_last_not_of(kSpaces) + 1);
  if (left) s.erase(0, std::min(s.find_first_not_of(kSpaces), s.size()));
  return s;
}

// ASCII only: roles and markers are ASCII; other letters are left as they are.
std::string change_case(std::string s, bool upper) {
  for (char& c : s) {
    if (upper && c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return s;
}

// Strings built by the template are capped like its output.
Value bounded(std::string s) {
  if (s.size() > kMaxOutput) throw Unsupported("the template builds a string that is too long");
  return Value(std::move(s));
}

int64_t code_points(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (uint8_t(c) & 0xC0) != 0x80; });
}

// Python's a % b: the result takes the divisor's sign.
int64_t python_mod(int64_t a, int64_t b) {
  if (b == 0) throw Unsupported("modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

class Renderer {
 public:
  explicit Renderer(const Object& globals) { scopes_.push_back(globals); }

  void run(const Body& body, std::string& out) {
    for (const Node& node : body) {
      step();
      switch (node.kind) {
        case Node::Kind::Text:
          charge(node.text.size());
          out += node.text;
          break;
        case Node::Kind::Output: {
          Value scratch;
          const std::string text = to_text(view(*node.expr, scratch));
          charge(text.size());
          out += text;
          break;
        }
        case Node::Kind::Set:
          assign(node.text, eval(*node.expr));
          break;
        case Node::Kind::If:
          for (const Branch& branch : node.branches)
            if (!branch.condition || truthy(eval(*branch.condition))) {
              run(branch.body, out);
              break;
            }
          break;
        case Node::Kind::For:
          run_loop(node, out);
          break;
      }
      if (out.size() > kMaxOutput) throw Unsupported("the template output is too large");
    }
  }

 private:
  void run_loop(const Node& node, std::string& out) {
    Value items = eval(*node.expr);
    if (items.is<Undefined>()) return;  // Jinja iterates an undefined value as empty
    if (!items.is<Array>()) type_error("looping over the items", items);
    const Array& list = items.as<Array>();
    int64_t n = int64_t(list.size());
    for (int64_t i = 0; i < n; ++i) {
      Object loop = {{"index", Value(i + 1)},    {"index0", Value(i)},
                     {"revindex", Value(n - i)}, {"revindex0", Value(n - i - 1)},
                     {"first", Value(i == 0)},   {"last", Value(i == n - 1)},
                     {"length", Value(n)}};
      // Each iteration gets a fresh scope: {% set %} inside does not outlive it.
      charge(size_of(list[size_t(i)]));
      scopes_.push_back({{node.text, list[size_t(i)]}, {"loop", Value(std::move(loop))}});
      run(node.body, out);
      scopes_.pop_back();
    }
  }

  void assign(const std::string& name, Value v) {
    for (auto& [k, old] : scopes_.back())
      if (k == name) {
        old = std::move(v);
        return;
      }
    scopes_.back().emplace_back(name, std::move(v));
  }

  const Value* lookup(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope)
      for (const auto& [k, v] : *scope)
        if (k == name) return &v;
    return nullptr;
  }

  void step() {
    if (++steps_ > kMaxSteps) throw Unsupported("the template takes too many steps");
  }
  void charge(size_t bytes) {
    bytes_ += bytes;
    if (bytes_ > kMaxBytes) throw Unsupported("the template produces too much data");
  }
  // Bytes a copy of `v` costs (strings' lengths, 16 per element); the nesting is bounded by
  // the parser's depth limit and the context's (messages of strings).
  static size_t size_of(const Value& v) {
    if (v.is<std::string>()) return v.as<std::string>().size();
    size_t n = 16;
    if (v.is<Array>())
      for (const Value& item : v.as<Array>()) n += size_of(item);
    if (v.is<Object>())
      for (const auto& [k, item] : v.as<Object>()) n += k.size() + size_of(item);
    return n;
  }

  // The value of `e` without copying stored data: a variable, or a member or item of one,
  // is returned where it lives (scopes, the context); a computed value is left in `scratch`.
  // `messages[0].role` inside a loop over a long conversation must not copy `messages`.
  const Value& view(const Expr& e, Value& scratch) {
    using K = Expr::Kind;
    if (e.kind != K::Name && e.kind != K::Attribute && e.kind != K::Item) return scratch = eval(e);
    step();
    if (e.kind == K::Name) {
      const Value* v = lookup(e.name);
      return v ? *v : scratch = Value();
    }
    Value parent_scratch;
    const Value& parent = view(*e.args[0], parent_scratch);
    const Value key = e.kind == K::Attribute ? Value(e.name) : eval(*e.args[1]);
    const Value* found = member(parent, key);
    if (!found) return scratch = Value();
    if (&parent != &parent_scratch) return *found;
    return scratch = Value(*found);  // the parent was computed: keep the member past it
  }

  Value eval(const Expr& e) {
    step();
    Value v = eval_node(e);
    charge(size_of(v));
    return v;
  }

  Value eval_node(const Expr& e) {
    using K = Expr::Kind;
    Value scratch;
    switch (e.kind) {
      case K::Literal:
        return e.literal;
      case K::Name:
      case K::Attribute:
      case K::Item:
        return view(e, scratch);
      case K::Slice:
        return slice(e);
      case K::Call:
        throw Error("chat template: " + to_text(eval(*e.args[0])));  // raise_exception
      case K::MethodCall:
        return method(e);
      case K::Filter:
        return filter(e.name, view(*e.args[0], scratch));
      case K::Test:
        return Value(test(e.name, view(*e.args[0], scratch)) != e.negated);
      case K::Not:
        return Value(!truthy(view(*e.args[0], scratch)));
      case K::Negate: {
        Value v = eval(*e.args[0]);
        if (!v.is<int64_t>() || v.as<int64_t>() == INT64_MIN) type_error("negation", v);
        return Value(-v.as<int64_t>());
      }
      case K::Binary:
        return binary(e);
      case K::List: {
        Array a;
        for (const auto& item : e.args) a.push_back(eval(*item));
        return Value(std::move(a));
      }
      case K::Conditional:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value();
    }
    throw Unsupported("unknown expression");
  }

  // a.b and a[b]: missing members are undefined (nullptr), as in Jinja; members of undefined
  // are errors.
  static const Value* member(const Value& object, const Value& key) {
    if (object.is<Object>() && key.is<std::string>()) return object.find(key.as<std::string>());
    if (object.is<Array>() && key.is<int64_t>()) {
      const Array& a = object.as<Array>();
      int64_t i = key.as<int64_t>(), n = int64_t(a.size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? &a[size_t(i)] : nullptr;
    }
    if (object.is<Undefined>())
      throw Unsupported("reading '" + to_text(key).substr(0, 40) + "' of an undefined value");
    if (object.is<Object>() || object.is<Array>()) return nullptr;
    type_error("indexing", object);
  }

  Value slice(const Expr& e) {
    Value object = eval(*e.args[0]);
    if (!object.is<Array>()) type_error("slicing", object);
    const Array& a = object.as<Array>();
    int64_t n = int64_t(a.size());
    auto bound = [&](const ExprPtr& b, int64_t fallback) {
      if (!b) return fallback;
      Value v = eval(*b);
      if (!v.is<int64_t>()) type_error("slicing with a bound", v);
      int64_t i = v.as<int64_t>();
      if (i < 0) i = std::max<int64_t>(0, i + n);
      return std::min(i, n);
    };
    int64_t start = bound(e.args[1], 0), stop = bound(e.args[2], n);
    return Value(start < stop ? Array(a.begin() + start, a.begin() + stop) : Array());
  }

  Value method(const Expr& e) {
    Value self = eval(*e.args[0]);
    if (!self.is<std::string>()) type_error("method ." + e.name + "()", self);
    const std::string& s = self.as<std::string>();
    if (e.name == "strip") return Value(strip(s, true, true));
    if (e.name == "lstrip") return Value(strip(s, true, false));
    if (e.name == "rstrip") return Value(strip(s, false, true));
    if (e.name == "lower" || e.name == "upper") return Value(change_case(s, e.name == "upper"));
    Value arg = eval(*e.args[1]);
    if (!arg.is<std::string>()) type_error("the argument of ." + e.name + "()", arg);
    const std::string& a = arg.as<std::string>();
    return Value(e.name == "startswith" ? s.starts_with(a) : s.ends_with(a));
  }

  static Value filter(const std::string& name, const Value& v) {
    if (name == "length") {
      if (v.is<std::string>()) return Value(code_points(v.as<std::string>()));
      if (v.is<Array>()) return Value(int64_t(v.as<Array>().size()));
      if (v.is<Object>()) return Value(int64_t(v.as<Object>().size()));
      type_error("length", v);
    }
    std::string s = to_text(v);
    if (name == "trim" || name == "strip") return Value(strip(s, true, true));
    return Value(change_case(s, name == "upper"));
  }

  static bool test(const std::string& name, const Value& v) {
    if (name == "defined") return !v.is<Undefined>();
    if (name == "undefined") return v.is<Undefined>();
    if (name == "none") return v.is<std::nullptr_t>();
    return v.is<std::string>();  // "string"
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    Value a = eval(*e.args[0]);
    // and / or short-circuit and yield an operand, as in Python.
    if (op == "and") return truthy(a) ? eval(*e.args[1]) : a;
    if (op == "or") return truthy(a) ? a : eval(*e.args[1]);
    Value b = eval(*e.args[1]);
    if (op == "==") return Value(equal(a, b));
    if (op == "!=") return Value(!equal(a, b));
    if (op == "~") return bounded(to_text(a) + to_text(b));
    if (op == "in") return Value(contains(b, a) != e.negated);
    if (a.is<int64_t>() && b.is<int64_t>()) return integer_op(op, a.as<int64_t>(), b.as<int64_t>());
    if (a.is<std::string>() && b.is<std::string>()) {
      const std::string &x = a.as<std::string>(), &y = b.as<std::string>();
      if (op == "+") return bounded(x + y);
      if (op == "<") return Value(x < y);
      if (op == ">") return Value(x > y);
      if (op == "<=") return Value(x <= y);
      if (op == ">=") return Value(x >= y);
    }
    if (op == "+" && a.is<Array>() && b.is<Array>()) {
      if (a.as<Array>().size() + b.as<Array>().size() > kMaxListItems)
        throw Unsupported("the template builds a list that is too long");
      Array joined = a.as<Array>();
      joined.insert(joined.end(), b.as<Array>().begin(), b.as<Array>().end());
      return Value(std::move(joined));
    }
    throw Unsupported(std::string("'") + op + "' between types " + type_name(a) + " and " +
                      type_name(b) + " is not supported");
  }

  static Value integer_op(const std::string& op, int64_t x, int64_t y) {
    int64_t r = 0;
    if (op == "+" && !__builtin_add_overflow(x, y, &r)) return Value(r);
    if (op == "-" && !__builtin_sub_overflow(x, y, &r)) return Value(r);
    if (op == "%") return Value(python_mod(x, y));
    if (op == "<") return Value(x < y);
    if (op == ">") return Value(x > y);
    if (op == "<=") return Value(x <= y);
    if (op == ">=") return Value(x >= y);
    throw Unsupported("integer overflow in '" + op + "'");
  }

  static bool contains(const Value& haystack, const Value& needle) {
    if (haystack.is<std::string>() && needle.is<std::string>())
      return haystack.as<std::string>().find(needle.as<std::string>()) != std::string::npos;
    if (haystack.is<Array>()) {
      const Array& a = haystack.as<Array>();
      return std::any_of(a.begin(), a.end(), [&](const Value& v) { return equal(v, needle); });
    }
    if (haystack.is<Object>() && needle.is<std::string>())
      return haystack.find(needle.as<std::string>()) != nullptr;
    throw Unsupported(std::string("'in' on type ") + type_name(haystack) + " is not supported");
  }

  std::vector<Object> scopes_;
  size_t steps_ = 0, bytes_ = 0;
};

}  // namespace

Template::Template(std::string_view source) : program_(parse_template(source)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Object& context) const {
  std::string out;
  Renderer(context).run(program_->body, out);
  return out;
}

}  // namespace megrez::jinja
