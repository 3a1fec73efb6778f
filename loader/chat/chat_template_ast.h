#pragma once
// Tokens and parsed form of a chat template, shared by the lexer, the parser and the
// renderer (chat_template_{lexer,parse,render}.cpp).
#include <memory>
#include <string>
#include <vector>

#include "loader/chat/chat_template.h"

namespace megrez::jinja {

struct Token {
  enum class Kind {
    Text,
    BlockBegin,
    BlockEnd,
    OutputBegin,
    OutputEnd,
    Name,
    String,
    Int,
    Op,
    End
  };
  Kind kind;
  std::string text;  // Text, Name, String (unescaped), Int digits, Op
};

// Text outside tags becomes Text tokens (whitespace rules applied); each {% %} / {{ }} becomes
// Begin, its tokens, End; comments vanish. Ends with an End token. Throws Unsupported.
std::vector<Token> lex_template(std::string_view source);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,      // literal
    Name,         // name
    Attribute,    // args[0].name
    Item,         // args[0][args[1]]
    Slice,        // args[0][args[1]:args[2]] (either bound may be null)
    Call,         // name(args...): only raise_exception
    MethodCall,   // args[0].name(args[1...])
    Filter,       // args[0] | name
    Test,         // args[0] is [not] name   (negated)
    Not,          // not args[0]
    Negate,       // -args[0]
    Binary,       // args[0] name args[1]; name is the operator ("+", "==", "and", "in", ...)
    List,         // [args...]
    Conditional,  // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  bool negated = false;  // Test: "is not"; Binary "in": "not in"
  size_t height = 1;     // levels below and including this node (the parser bounds it)
};

struct Node;
using Body = std::vector<Node>;
struct Branch;

struct Node {
  enum class Kind { Text, Output, If, For, Set };
  Kind kind;
  std::string text;              // Text: the text; For: loop variable; Set: target name
  ExprPtr expr;                  // Output: value; For: iterable; Set: value
  std::vector<Branch> branches;  // If: if / elif... / else (else has no condition)
  Body body;                     // For: loop body
};

struct Branch {
  ExprPtr condition;  // null for {% else %}
  Body body;
};

struct Template::Program {
  Body body;
};

// Parses template source into a Program; throws Unsupported.
std::unique_ptr<Template::Program> parse_template(std::string_view source);

}  // namespace megrez::jinja
