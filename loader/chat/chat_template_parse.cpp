// Chat template parser (the Jinja subset of chat_template.h) over lex_template's tokens.
#include <algorithm>

#include "loader/chat/chat_template_ast.h"

namespace megrez::jinja {
namespace {

constexpr size_t kMaxDepth = 100;  // nesting of expressions and blocks

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, end);
    if (peek().kind != Token::Kind::End) throw Unsupported("unexpected {% " + end + " %}");
    return body;
  }

 private:
  using K = Token::Kind;

  const Token& peek(size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Token& take() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool at_op(std::string_view op) const { return peek().kind == K::Op && peek().text == op; }
  bool at_name(std::string_view n) const { return peek().kind == K::Name && peek().text == n; }
  void expect_op(std::string_view op) {
    if (!at_op(op))
      throw Unsupported("expected '" + std::string(op) + "' in a tag, got '" + peek().text + "'");
    ++i_;
  }
  void expect(K kind, const char* what) {
    if (peek().kind != kind)
      throw Unsupported(std::string("expected ") + what + ", got '" + peek().text + "'");
    ++i_;
  }
  std::string expect_name() {
    if (peek().kind != K::Name) throw Unsupported("expected a name, got '" + peek().text + "'");
    return take().text;
  }

  struct DepthGuard {
    size_t& depth;
    explicit DepthGuard(size_t& d) : depth(d) {
      if (++depth > kMaxDepth) throw Unsupported("template nests too deeply");
    }
    ~DepthGuard() { --depth; }
  };

  // Parses nodes until a block tag whose keyword is in `enders` (left unconsumed, its
  // keyword returned in `ended_by`) or the end of the template.
  Body parse_body(std::initializer_list<std::string_view> enders, std::string& ended_by) {
    DepthGuard guard(depth_);
    Body body;
    for (;;) {
      const Token& tok = peek();
      if (tok.kind == K::End) {
        ended_by.clear();
        return body;
      }
      if (tok.kind == K::Text) {
        body.push_back({Node::Kind::Text, take().text, nullptr, {}, {}});
      } else if (tok.kind == K::OutputBegin) {
        ++i_;
        body.push_back({Node::Kind::Output, "", parse_expression(), {}, {}});
        expect(K::OutputEnd, "}}");
      } else if (tok.kind == K::BlockBegin) {
        const Token& keyword = peek(1);
        for (std::string_view e : enders)
          if (keyword.kind == K::Name && keyword.text == e) {
            ended_by = keyword.text;
            return body;
          }
        ++i_;
        body.push_back(parse_statement());
      } else {
        throw Unsupported("unexpected '" + tok.text + "'");
      }
    }
  }

  Node parse_statement() {
    std::string keyword = expect_name();
    if (keyword == "if") return parse_if();
    if (keyword == "for") return parse_for();
    if (keyword == "set") {
      std::string target = expect_name();
      if (at_op(".") || at_op(",")) throw Unsupported("{% set %} supports one plain name");
      expect_op("=");
      Node n{Node::Kind::Set, target, parse_expression(), {}, {}};
      expect(K::BlockEnd, "%}");
      return n;
    }
    throw Unsupported("{% " + keyword + " %} is not supported");
  }

  Node parse_if() {
    Node n{Node::Kind::If, "", nullptr, {}, {}};
    ExprPtr condition = parse_expression();
    for (;;) {
      expect(K::BlockEnd, "%}");
      std::string ended_by;
      Body body = parse_body({"elif", "else", "endif"}, ended_by);
      n.branches.push_back({std::move(condition), std::move(body)});
      if (ended_by.empty()) throw Unsupported("{% if %} without {% endif %}");
      i_ += 2;  // BlockBegin + keyword
      if (ended_by == "elif") {
        condition = parse_expression();
      } else if (ended_by == "else") {
        if (!n.branches.back().condition) throw Unsupported("{% else %} after {% else %}");
        condition = nullptr;
      } else {
        expect(K::BlockEnd, "%}");
        return n;
      }
    }
  }

  Node parse_for() {
    std::string variable = expect_name();
    if (at_op(",")) throw Unsupported("{% for a, b in ... %} is not supported");
    if (!at_name("in")) throw Unsupported("expected 'in' in {% for %}");
    ++i_;
    Node n{Node::Kind::For, variable, parse_or(), {}, {}};  // no inline `if` filter on loops
    if (!(peek().kind == K::BlockEnd)) throw Unsupported("{% for %} supports only 'for x in expr'");
    ++i_;
    std::string ended_by;
    n.body = parse_body({"endfor", "else"}, ended_by);
    if (ended_by != "endfor")
      throw Unsupported(ended_by.empty() ? "{% for %} without {% endfor %}"
                                         : "{% for %}...{% else %} is not supported");
    i_ += 2;
    expect(K::BlockEnd, "%}");
    return n;
  }

  static ExprPtr make(Expr::Kind kind, std::string name = {}, std::vector<ExprPtr> args = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->name = std::move(name);
    for (ExprPtr& arg : args) add_arg(*e, std::move(arg));
    return e;
  }
  // Trees are bounded by height, not only by the parser's recursion: the operator loops
  // build left-deep trees without recursing (`x or x or ... x`, `x.y.y.y...`), and the
  // renderer and the destructor walk trees recursively (100,000 links crashed both).
  // Throwing here leaves only trees of bounded height to destroy.
  static void add_arg(Expr& e, ExprPtr arg) {
    if (arg) {
      e.height = std::max(e.height, arg->height + 1);
      if (e.height > kMaxDepth) throw Unsupported("template expression nests too deeply");
    }
    e.args.push_back(std::move(arg));
  }
  static std::vector<ExprPtr> list(ExprPtr a, ExprPtr b = nullptr, ExprPtr c = nullptr) {
    std::vector<ExprPtr> v;
    v.push_back(std::move(a));
    if (b) v.push_back(std::move(b));
    if (c) v.push_back(std::move(c));
    return v;
  }

  ExprPtr parse_expression() {
    DepthGuard guard(depth_);
    ExprPtr value = parse_or();
    if (!at_name("if")) return value;
    ++i_;
    ExprPtr condition = parse_or();
    ExprPtr otherwise;
    if (at_name("else")) {
      ++i_;
      otherwise = parse_expression();
    }
    auto e = make(Expr::Kind::Conditional);
    add_arg(*e, std::move(value));
    add_arg(*e, std::move(condition));
    add_arg(*e, std::move(otherwise));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      ++i_;
      left = make(Expr::Kind::Binary, "or", list(std::move(left), parse_and()));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      ++i_;
      left = make(Expr::Kind::Binary, "and", list(std::move(left), parse_not()));
    }
    return left;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      ++i_;
      DepthGuard guard(depth_);
      return make(Expr::Kind::Not, "", list(parse_not()));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr left = parse_sum();
    for (;;) {
      if (peek().kind == K::Op &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        std::string op = take().text;
        left = make(Expr::Kind::Binary, op, list(std::move(left), parse_sum()));
      } else if (at_name("in") ||
                 (at_name("not") && peek(1).kind == K::Name && peek(1).text == "in")) {
        bool negated = at_name("not");
        i_ += negated ? 2 : 1;
        left = make(Expr::Kind::Binary, "in", list(std::move(left), parse_sum()));
        left->negated = negated;
      } else {
        return left;
      }
    }
  }

  ExprPtr parse_sum() {
    ExprPtr left = parse_concat();
    while (at_op("+") || at_op("-")) {
      std::string op = take().text;
      left = make(Expr::Kind::Binary, op, list(std::move(left), parse_concat()));
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_product();
    while (at_op("~")) {
      ++i_;
      left = make(Expr::Kind::Binary, "~", list(std::move(left), parse_product()));
    }
    return left;
  }

  ExprPtr parse_product() {
    ExprPtr left = parse_unary();
    while (at_op("%") || at_op("*") || at_op("/") || at_op("//") || at_op("**")) {
      if (!at_op("%")) throw Unsupported("operator '" + peek().text + "' is not supported");
      ++i_;
      left = make(Expr::Kind::Binary, "%", list(std::move(left), parse_unary()));
    }
    return left;
  }

  ExprPtr parse_unary() {
    if (at_op("-")) {
      ++i_;
      DepthGuard guard(depth_);
      return make(Expr::Kind::Negate, "", list(parse_unary()));
    }
    return parse_postfix(parse_primary());
  }

  ExprPtr parse_primary() {
    const Token& tok = take();
    if (tok.kind == K::String) {
      auto e = make(Expr::Kind::Literal);
      std::string text = tok.text;
      while (peek().kind == K::String) text += take().text;  // adjacent literals concatenate
      e->literal = Value(std::move(text));
      return e;
    }
    if (tok.kind == K::Int) {
      auto e = make(Expr::Kind::Literal);
      e->literal = Value(int64_t(std::stoll(tok.text)));
      return e;
    }
    if (tok.kind == K::Name) return parse_name(tok.text);
    if (tok.kind == K::Op && tok.text == "(") {
      ExprPtr inner = parse_expression();
      expect_op(")");
      return inner;
    }
    if (tok.kind == K::Op && tok.text == "[") {
      auto e = make(Expr::Kind::List);
      while (!at_op("]")) {
        add_arg(*e, parse_expression());
        if (!at_op(",")) break;
        ++i_;
      }
      expect_op("]");
      return e;
    }
    throw Unsupported("unexpected '" + tok.text + "' in an expression");
  }

  ExprPtr parse_name(const std::string& name) {
    auto literal = [&](Value v) {
      auto e = make(Expr::Kind::Literal);
      e->literal = std::move(v);
      return e;
    };
    if (name == "true" || name == "True") return literal(Value(true));
    if (name == "false" || name == "False") return literal(Value(false));
    if (name == "none" || name == "None") return literal(Value(nullptr));
    if (at_op("(")) {
      if (name != "raise_exception") throw Unsupported("function " + name + "() is not supported");
      ++i_;
      auto e = make(Expr::Kind::Call, name, list(parse_expression()));
      expect_op(")");
      return e;
    }
    return make(Expr::Kind::Name, name);
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      DepthGuard guard(depth_);
      if (at_op(".")) {
        ++i_;
        std::string attr = expect_name();
        if (at_op("("))
          e = parse_method(std::move(e), attr);
        else
          e = make(Expr::Kind::Attribute, attr, list(std::move(e)));
      } else if (at_op("[")) {
        ++i_;
        e = parse_subscript(std::move(e));
      } else if (at_op("|")) {
        ++i_;
        std::string filter = expect_name();
        if (filter != "trim" && filter != "strip" && filter != "length" && filter != "lower" &&
            filter != "upper")
          throw Unsupported("filter '" + filter + "' is not supported");
        if (at_op("(")) throw Unsupported("filter arguments are not supported");
        e = make(Expr::Kind::Filter, filter, list(std::move(e)));
      } else if (at_name("is")) {
        ++i_;
        bool negated = at_name("not");
        if (negated) ++i_;
        std::string test = expect_name();
        if (test != "defined" && test != "undefined" && test != "none" && test != "string")
          throw Unsupported("test 'is " + test + "' is not supported");
        e = make(Expr::Kind::Test, test, list(std::move(e)));
        e->negated = negated;
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_method(ExprPtr object, const std::string& method) {
    static const std::vector<std::string> no_args = {"strip", "lstrip", "rstrip", "lower", "upper"};
    bool one_arg = method == "startswith" || method == "endswith";
    if (!one_arg && std::find(no_args.begin(), no_args.end(), method) == no_args.end())
      throw Unsupported("method ." + method + "() is not supported");
    expect_op("(");
    auto e = make(Expr::Kind::MethodCall, method, list(std::move(object)));
    if (one_arg) add_arg(*e, parse_expression());
    expect_op(")");
    return e;
  }

  ExprPtr parse_subscript(ExprPtr object) {
    ExprPtr first = at_op(":") ? nullptr : parse_expression();
    if (!at_op(":")) {
      expect_op("]");
      return make(Expr::Kind::Item, "", list(std::move(object), std::move(first)));
    }
    ++i_;
    ExprPtr second = at_op("]") ? nullptr : parse_expression();
    if (at_op(":")) throw Unsupported("slice steps are not supported");
    expect_op("]");
    auto e = make(Expr::Kind::Slice);
    add_arg(*e, std::move(object));
    add_arg(*e, std::move(first));
    add_arg(*e, std::move(second));
    return e;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  size_t depth_ = 0;
};

}  // namespace

std::unique_ptr<Template::Program> parse_template(std::string_view source) {
  auto program = std::make_unique<Template::Program>();
  program->body = Parser(lex_template(source)).parse_all();
  return program;
}

}  // namespace megrez::jinja
