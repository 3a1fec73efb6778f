#!/usr/bin/env python3
"""Writes chat_expected.json: chat templates rendered by the real Jinja2 (python3-jinja2),
configured as Hugging Face's apply_chat_template configures it (trim_blocks, lstrip_blocks,
raise_exception), for the C++ renderer's tests. Also lists templates that Jinja2 renders
but the C++ subset must refuse (so the chat code falls back to the built-in format).
Run once with a python3 that has Jinja2 (3.1 here); the output is committed.
"""
import json
import os

import jinja2
import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))

MEGREZ = ("{% for message in messages %}{{ '<|role_start|>' + message['role'] + '<|role_end|>' + "
          "message['content'] + '<|turn_end|>' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|role_start|>assistant<|role_end|>' }}{% endif %}")

CHATML = """{% for message in messages %}
{% if loop.first and messages[0]['role'] != 'system' %}
{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
{% endif %}
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{% endfor %}
{% if add_generation_prompt %}
{{ '<|im_start|>assistant\\n' }}
{% endif %}
"""

LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
          "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
          "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
          "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
          "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
          "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
          "{% endfor %}")

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
          "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

INDENTED = """Conversation:
  {%- for m in messages %}
    {% if m.role == 'system' -%}
      [sys] {{ m.content | upper }}
    {%- elif m.role in ['user', 'human'] %}
      [{{ loop.index }}/{{ loop.length }}] {{ m.role ~ ': ' ~ m.content }}
    {% else %}
      {# a comment #}
      [bot] {{ m.content if m.content else '(empty)' }}{{ '' if loop.last else ',' }}
    {% endif %}
  {%- endfor %}
{{- '\\n<gen>' if add_generation_prompt else '' -}}
"""

EXPRESSIONS = ("{% set n = messages | length %}{{ n }} {{ n - 1 }} {{ -n % 3 }} {{ n > 2 }} "
               "{{ 'abc' < 'abd' }} {{ messages[-1].role }} {{ messages[1:][0]['role'] }} "
               "{{ messages[5] is defined }} {{ missing is undefined }} {{ none is none }} "
               "{{ 'x' is string }} {{ 'ell' in 'hello' }} {{ 'q' not in 'hello' }} "
               "{{ 'role' in messages[0] }} {{ messages[0].content.startswith('Hi') }} "
               "{{ messages[0].content.endswith('?') }} {{ '  pad  '.lstrip() ~ '|' ~ '  pad  '.rstrip() }} "
               "{{ 'MiXed'.lower() ~ 'MiXed'.upper() }} {{ ([1, 2] + [3]) | length }} "
               "{{ true and 'yes' }} {{ false or 'fallback' }} {{ not messages }} {{ none }} "
               "{{ '\\u00e9t\\u00e9' | length }} {{ 'a' 'b' }} {{ 1 == true }} {{ [1, 'x'] == [1, 'x'] }}")

SCOPING = ("{% set outer = 'o' %}{% for m in messages %}{% set outer = m.role %}{% set inner = loop.index %}"
           "{{ outer }}{{ inner }}{% endfor %}|{{ outer }}|{{ inner }}|"
           "{% if true %}{% set in_if = 'kept' %}{% endif %}{{ in_if }}")

WHITESPACE = ("  {% if true %}\n  kept\n  {% endif %}\nline  {{- ' tight ' -}}  end\n"
              "{#- c -#}\n  x {%+ if true %}plus{% endif %}\n\t{% for m in messages %}{{ m.role }}{% endfor %}\n")

TEMPLATES = {"megrez": MEGREZ, "chatml": CHATML, "llama2": LLAMA2, "llama3": LLAMA3,
             "indented": INDENTED, "expressions": EXPRESSIONS, "scoping": SCOPING,
             "whitespace": WHITESPACE}

CONVERSATIONS = [
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
     {"role": "assistant", "content": "  Hello!  "}, {"role": "user", "content": "Bye\n"}],
    [{"role": "user", "content": "Hi 你好 🙂"}, {"role": "assistant", "content": ""},
     {"role": "user", "content": "{{ not a tag }}"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],  # llama2 refuses
]

# Valid Jinja that the C++ subset must refuse.
UNSUPPORTED = [
    "{% macro f() %}x{% endmacro %}{{ f() }}",
    "{% set ns = namespace(found=false) %}{{ ns.found }}",
    "{{ messages | tojson }}",
    "{{ messages[0]['content'] | replace('a', 'b') }}",
    "{% for m in messages if m.role == 'user' %}{{ m.content }}{% endfor %}",
    "{% for m in messages %}{{ m }}{% else %}none{% endfor %}",
    "{{ 1.5 }}",
    "{{ 2 * 3 }}",
    "{% for k, v in messages[0].items() %}{{ k }}{% endfor %}",
    "{{ messages[0]['content'].split(' ') }}",
    "{% raw %}{{ x }}{% endraw %}",
    "{{ range(3) | length }}",
    "{{ 'a' + 1 }}",
    "{{ messages }}",
    "{{ undefined_thing.attribute }}",
    "{% for c in 'abc' %}{{ c }}{% endfor %}",
    "{% include 'other' %}",
]


class RaisedByTemplate(Exception):
    pass


def environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise RaisedByTemplate(message)
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    env = environment()
    cases = []
    for name, source in TEMPLATES.items():
        template = env.from_string(source)
        for conversation in CONVERSATIONS:
            for add_generation_prompt in (False, True):
                context = {"messages": conversation, "add_generation_prompt": add_generation_prompt,
                           "bos_token": "<s>", "eos_token": "</s>"}
                # error: "raised" by raise_exception (megrez::Error in C++), or "undefined"
                # for reading a member of an undefined value (refused by the C++ subset).
                output, error, message = None, None, None
                try:
                    output = template.render(**context)
                except RaisedByTemplate as e:
                    error, message = "raised", str(e)
                except jinja2.exceptions.UndefinedError as e:
                    error, message = "undefined", str(e)
                cases.append({"name": name, "template": source, "context": context,
                              "output": output, "error": error, "message": message})
    for source in UNSUPPORTED:
        # Each must be fine Jinja (or a plain runtime type error), so refusing it is the
        # subset's choice, not a broken test.
        try:
            env.from_string(source).render(messages=CONVERSATIONS[0])
        except (jinja2.exceptions.UndefinedError, TypeError, jinja2.exceptions.TemplateNotFound,
                jinja2.exceptions.SecurityError):
            pass
    with open(os.path.join(HERE, "chat_expected.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "unsupported": UNSUPPORTED}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
