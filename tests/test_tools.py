"""model/tools.py: MiniMind's six tools, calculate_math without eval (injection strings and huge
powers refused quickly, nothing run), timeouts without signals, error results instead of crashes,
user tools (register, @tool, file.py:function), and the <tool_call> parsing helpers."""
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model.tools import (BUILTIN_TOOL_NAMES, MAX_RESPONSE_CHARS, ToolRegistry, check_tool_definitions,  # noqa: E402
                         format_tool_call, parse_tool_calls, to_openai_tool_calls, tool, tool_response_text)
from trainer.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    return ToolRegistry()


def calc(registry, expression):
    return registry.execute("calculate_math", {"expression": expression})


# ---------------------------------------------------------------------------------------------- the six tools

def test_minimind_names_and_argument_schemas(registry):
    """Names, argument names, types and required lists as MiniMind's trainer/train_agent.py has them."""
    assert BUILTIN_TOOL_NAMES == ("calculate_math", "unit_converter", "get_current_weather", "get_current_time",
                                  "get_exchange_rate", "translate_text")
    expected = {"calculate_math": ({"expression": "string"}, ["expression"]),
                "unit_converter": ({"value": "number", "from_unit": "string", "to_unit": "string"},
                                   ["value", "from_unit", "to_unit"]),
                "get_current_weather": ({"location": "string", "unit": "string"}, ["location"]),
                "get_current_time": ({"timezone": "string"}, []),
                "get_exchange_rate": ({"from_currency": "string", "to_currency": "string"},
                                      ["from_currency", "to_currency"]),
                "translate_text": ({"text": "string", "target_language": "string"}, ["text", "target_language"])}
    schemas = registry.schemas("all")
    assert [s["function"]["name"] for s in schemas] == list(BUILTIN_TOOL_NAMES)
    for s in schemas:
        assert s["type"] == "function" and s["function"]["description"]
        params = s["function"]["parameters"]
        props, required = expected[s["function"]["name"]]
        assert params["type"] == "object" and params["required"] == required
        assert {k: v["type"] for k, v in params["properties"].items()} == props
        assert "additionalProperties" not in params   # what the model sees is MiniMind's shape
    json.dumps(schemas)   # plain JSON, ready for the chat template and the server
    check_tool_definitions(schemas)


@pytest.mark.parametrize("expression,result", [
    ("256 * 37", "9472"), ("2**10", "1024"), ("71^2", "5041"), ("sqrt(144)", "12.0"), ("math.sqrt(16)", "4.0"),
    ("（1+2）×3", "9"), ("10 ÷ 4", "2.5"), ("7 // 2", "3"), ("7 % 3", "1"), ("-3 + +5", "2"), ("5−7", "-2"),
    ("3²", "9"), ("round(2.567, 2)", "2.57"), ("abs(-4)", "4"), ("2 * pi", str(2 * 3.141592653589793)),
    ("2 ** -1", "0.5"), ("1.5e3 + 1", "1501.0"), ("2**3000 // 2**2999", "2"),
    ("-" * 400 + "1", "1"), ("(" * 150 + "2" + ")" * 150, "2")])
def test_calculate_math_does_arithmetic(registry, expression, result):
    assert calc(registry, expression) == {"result": result}


INJECTIONS = [
    "__import__('os').system('touch {pwned}')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd').read()",
    "(lambda: __import__('os').system('touch {pwned}'))()",
    "[__import__('os').system('touch {pwned}') for _ in (1,)]",
    "exec(\"import os; os.system('touch {pwned}')\")",
    "eval('1+1')", "globals()", "__builtins__", "math.__dict__", "sqrt.__self__", "math.os",
    "import os", "1; __import__('os')", "(x := 1)", "'a' * 10", "f'{{1}}'", "1 if 1 else 2", "1 < 2",
    "True + 1", "1j * 1j", "sqrt(x=4)", "[1, 2][0]", "{{}}", "...",
]
HUGE = ["9**9**9**9", "2**2**2**2**2**2", "10**100000", "(10**900)**4", "10**1000 * 10**1000 * 10**1000",
        "1e308 * 10", "1.0001 ** 10**7", "exp(1000)", "1/0", "5 % 0", "(-8) ** 0.5", "sqrt(-1)", "log(0)",
        "10**1000 / 3", "1" * 600, "(" * 240 + "1" + ")" * 240, "-" * 400 + "1 + 'x'", ""]


@pytest.mark.parametrize("expression", INJECTIONS + HUGE)
def test_calculate_math_refuses_quickly_and_runs_nothing(registry, expression, tmp_path):
    pwned = tmp_path / "pwned"
    start = time.perf_counter()
    result = calc(registry, expression.format(pwned=pwned))
    elapsed = time.perf_counter() - start
    assert set(result) == {"error"} and result["error"].startswith("calculate_math"), result
    assert elapsed < 1.0, (expression, elapsed)
    assert not pwned.exists()


def test_the_tables(registry):
    run = registry.execute
    assert run("unit_converter", {"value": 100, "from_unit": "km", "to_unit": "miles"}) == {"result": 62.1371}
    assert run("unit_converter", {"value": 30, "from_unit": "celsius", "to_unit": "fahrenheit"}) == {"result": 86.0}
    assert run("unit_converter", {"value": 2.5, "from_unit": "公斤", "to_unit": "lb"}) == {"result": 5.5116}
    assert "cannot convert kg to km" in run("unit_converter", {"value": 1, "from_unit": "kg", "to_unit": "km"})["error"]
    assert run("get_current_weather", {"location": "北京"}) == \
        {"city": "北京", "temperature": "28°C", "humidity": "65%", "condition": "晴"}
    assert run("get_current_weather", {"location": "beijing", "unit": "fahrenheit"})["temperature"] == "82°F"
    assert run("get_current_weather", {"location": "Atlantis"})["temperature"] == "22°C"   # MiniMind's default
    assert run("get_current_time", {}) == {"datetime": "2025-03-07 14:30:00", "timezone": "Asia/Shanghai"}
    assert run("get_current_time", {"timezone": "America/New_York"})["datetime"] == "2025-03-07 01:30:00"
    assert "unknown timezone" in run("get_current_time", {"timezone": "Mars/Base"})["error"]
    assert "unknown argument" not in str(run("get_current_time", {"timezone": "UTC"}))
    assert "clock" in run("get_current_time", {"clock": "x"})["error"]   # the model cannot set the clock
    clocked = ToolRegistry(clock=lambda: datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert clocked.execute("get_current_time", {"timezone": "UTC"})["datetime"] == "2030-01-02 03:04:05"
    assert run("get_exchange_rate", {"from_currency": "USD", "to_currency": "CNY"})["rate"] == 7.21
    assert run("get_exchange_rate", {"from_currency": "cny", "to_currency": "usd"})["rate"] == round(1 / 7.21, 4)
    assert run("get_exchange_rate", {"from_currency": "美元", "to_currency": "人民币"})["rate"] == 7.21
    assert "no rate" in run("get_exchange_rate", {"from_currency": "XYZ", "to_currency": "CNY"})["error"]
    assert run("translate_text", {"text": "你好世界", "target_language": "English"}) == {"translated_text": "Hello World"}
    assert "no translation" in run("translate_text", {"text": "?", "target_language": "french"})["error"]


# ---------------------------------------------------------------------------------------------- never a crash

def test_timeout_without_signals():
    release = threading.Event()
    registry = ToolRegistry(builtins=False, timeout_s=0.2)
    registry.register("slow", lambda seconds: release.wait(seconds) or "done",
                      {"type": "object", "properties": {"seconds": {"type": "number"}}, "required": ["seconds"]})
    try:
        start = time.perf_counter()
        assert registry.execute("slow", {"seconds": 30}) == {"error": "slow timed out after 0.2 s"}
        assert time.perf_counter() - start < 1.0
        assert registry.execute("slow", {"seconds": 0}) == {"result": "done"}
        assert registry.execute("slow", {"seconds": 30}, timeout_s=0.05)["error"].endswith("0.05 s")
        # from a thread other than the main one, where no signal handler could ever run
        box = []
        caller = threading.Thread(target=lambda: box.append(registry.execute("slow", {"seconds": 30})))
        caller.start()
        caller.join(2.0)
        assert box == [{"error": "slow timed out after 0.2 s"}]
    finally:
        release.set()


def test_bad_calls_get_error_results(registry):
    run = registry.execute
    cases = [
        (run("get_weather", {}), "unknown tool 'get_weather'; available: calculate_math, unit_converter"),
        (run("calculate_math", '{"expression": "1+'), "calculate_math: arguments are not valid JSON"),
        (run("calculate_math", "[1, 2]"), "calculate_math: arguments must be object, not list"),
        (run("calculate_math", {}), "calculate_math: arguments is missing required expression"),
        (run("calculate_math", {"expression": 12}), "calculate_math: arguments.expression must be string, not int"),
        (run("unit_converter", {"value": "100", "from_unit": "km", "to_unit": "miles"}),
         "unit_converter: arguments.value must be number, not str"),
        (run("unit_converter", {"value": True, "from_unit": "km", "to_unit": "miles"}),
         "unit_converter: arguments.value must be number, not bool"),
        (run("get_current_weather", {"location": "北京", "unit": "kelvin"}),
         'get_current_weather: arguments.unit must be one of ["celsius", "fahrenheit"]'),
        (run("translate_text", {"text": "hi", "target_language": "zh", "tone": "polite"}),
         "translate_text: arguments has unknown 'tone' (expected: text, target_language)"),
        (registry.execute_call({"name": "nope"}), "unknown tool 'nope'"),
        (registry.execute_call("garbage"), "unknown tool None"),
        (registry.execute_call({"name": ["a"], "arguments": {}}), "unknown tool ['a']"),
        (run("calculate_math", {"expression": object()}), "calculate_math: arguments.expression must be string"),
    ]
    for result, message in cases:
        assert set(result) == {"error"} and result["error"].startswith(message), (result, message)
    # arguments as OpenAI sends them: a JSON string, inside a tool_calls entry
    call = to_openai_tool_calls([{"name": "calculate_math", "arguments": {"expression": "6*7"}}])[0]
    assert registry.execute_call(call) == {"result": "42"}
    assert run("get_current_time", "") == run("get_current_time", None) == run("get_current_time", {})


def test_a_tool_that_raises_or_exits_gives_an_error_result():
    registry = ToolRegistry(builtins=False)
    empty = {"type": "object", "properties": {}}

    def boom():
        raise ValueError("bad\nthing")
    registry.register("boom", boom, empty)
    registry.register("leave", lambda: sys.exit(3), empty)
    registry.register("listy", lambda: [1, 2], empty)
    assert registry.execute("boom", {}) == {"error": "boom failed: ValueError: bad thing"}
    assert registry.execute("leave", {}) == {"error": "leave failed: SystemExit: 3"}
    assert registry.execute("listy", {}) == {"result": [1, 2]}


# ---------------------------------------------------------------------------------------------- user tools

def test_register_a_user_tool():
    registry = ToolRegistry()
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array",
              "items": {"type": "string"}}}, "required": ["n"]}
    registry.register("square", lambda n, tags=(): {"square": n * n, "tags": list(tags)}, schema, "Square n")
    assert registry.names()[-1] == "square"
    assert registry.schemas("square") == [{"type": "function", "function": {"name": "square",
                                                                            "description": "Square n",
                                                                            "parameters": schema}}]
    assert registry.execute("square", {"n": 7}) == {"square": 49, "tags": []}
    assert registry.execute("square", {"n": 7.0}) == {"square": 49.0, "tags": []}   # 7.0 is a JSON integer
    assert "must be integer" in registry.execute("square", {"n": 7.5})["error"]
    assert "arguments.tags[1] must be string" in registry.execute("square", {"n": 1, "tags": ["a", 2]})["error"]
    for bad, message in [
        (("square", lambda n: n, schema), "already registered; pass replace=True"),
        (("bad name!", lambda: 0, {"type": "object"}), "use 1-64 letters"),
        (("f", "not callable", {"type": "object"}), "is not a function"),
        (("f", lambda x: x, {"type": "object", "properties": {"x": {"type": "text"}}}), "unknown type 'text'"),
        (("f", lambda x: x, {"type": "array"}), "must have type object"),
        (("f", lambda x: x, {"type": "object", "properties": {"y": {"type": "string"}}}), "no argument y"),
        (("f", lambda x: x, {"type": "object", "properties": {"x": {"type": "string"}}}), "needs x"),
    ]:
        with pytest.raises(UserError, match=message):
            registry.register(*bad)
    registry.register("calculate_math", lambda expression: {"result": "mine"},
                      {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
                      replace=True)
    assert registry.execute("calculate_math", {"expression": "1"}) == {"result": "mine"}


def test_decorator_and_file_py_function(tmp_path):
    @tool(parameters={"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]})
    def shout(word):
        """Upper-case a word."""
        return {"loud": word.upper()}
    registry = ToolRegistry(builtins=False)
    registry.register_function(shout)
    assert registry.schemas("all")[0]["function"]["description"] == "Upper-case a word."
    assert registry.execute("shout", {"word": "hi"}) == {"loud": "HI"}

    path = tmp_path / "my_tools.py"
    path.write_text("from model.tools import tool\n\n"
                    "@tool(description='Count letters', name='count_letters',\n"
                    "      parameters={'type': 'object', 'properties': {'text': {'type': 'string'}},\n"
                    "                  'required': ['text']})\n"
                    "def count(text):\n    return {'letters': sum(c.isalpha() for c in text)}\n\n"
                    "def plain(x):\n    return x\n", encoding="utf-8")
    registry = ToolRegistry()
    names = registry.select(f"calculate_math,{path}:count")
    assert names == ["calculate_math", "count_letters"]
    assert registry.execute("count_letters", {"text": "a1 b2"}) == {"letters": 2}
    assert [s["function"]["name"] for s in registry.schemas("all")] == list(BUILTIN_TOOL_NAMES) + ["count_letters"]
    (tmp_path / "broken.py").write_text("raise RuntimeError('nope')\n")
    for spec, message in [(f"{tmp_path}/missing.py:f", "expected path/to/file.py:function_name"),
                          (f"{path}:nothing", "has no function 'nothing'"),
                          (f"{path}:plain", r"plain: mark it with @tool\(parameters="),
                          (f"{tmp_path}/broken.py:f", "importing .*broken.py failed \\(RuntimeError: nope\\)")]:
        with pytest.raises(UserError, match=message):
            registry.load(spec)


def test_select_spec():
    registry = ToolRegistry()
    assert registry.select("all") == list(BUILTIN_TOOL_NAMES)
    assert registry.select(" unit_converter , calculate_math,unit_converter") == ["unit_converter", "calculate_math"]
    assert registry.select(["translate_text"]) == ["translate_text"]
    with pytest.raises(UserError) as e:
        registry.schemas("calculate_math,get_weather")
    message = str(e.value)
    assert "\n" not in message and "unknown tool 'get_weather'" in message and "translate_text" in message
    with pytest.raises(UserError, match="no tools named"):
        registry.select(" , ")


# ---------------------------------------------------------------------------------------------- parsing

def test_parse_minimind_layout():
    text = ("I'll compute both.\n"
            + format_tool_call("calculate_math", {"expression": "256 * 37"}) + "\n"
            + format_tool_call("get_exchange_rate", '{"from_currency": "USD", "to_currency": "CNY"}'))
    assert format_tool_call("calculate_math", {"expression": "2**10"}) == \
        '<tool_call>\n{"name": "calculate_math", "arguments": {"expression": "2**10"}}\n</tool_call>'
    parsed = parse_tool_calls(text)
    assert parsed.content == "I'll compute both." and parsed.errors == []
    assert parsed.calls == [{"name": "calculate_math", "arguments": {"expression": "256 * 37"}},
                            {"name": "get_exchange_rate", "arguments": {"from_currency": "USD", "to_currency": "CNY"}}]
    # MiniMind's README shows calls without the newlines; arguments may be a JSON-encoded string
    parsed = parse_tool_calls('<tool_call>{"name": "calculate_math", "arguments": "{\\"expression\\": \\"71**2\\"}"}'
                              '</tool_call>')
    assert parsed == ("", [{"name": "calculate_math", "arguments": {"expression": "71**2"}}], [])
    assert parse_tool_calls("  just an answer: 42  ") == ("just an answer: 42", [], [])
    assert parse_tool_calls("中文<tool_call>\n{\"name\": \"translate_text\", \"arguments\": {\"text\": \"你好世界\", "
                            "\"target_language\": \"english\"}}\n</tool_call>").calls[0]["arguments"]["text"] == "你好世界"


def test_parse_reports_malformed_blocks():
    text = ("a <tool_call>{not json}</tool_call> b "
            '<tool_call>{"arguments": {}}</tool_call>'
            '<tool_call>{"name": "x", "arguments": [1]}</tool_call>'
            '<tool_call>{"name": "x", "arguments": "{oops"}</tool_call>'
            '<tool_call>{"name": "ok"}</tool_call>'
            " c </tool_call> d <tool_call>{\"name\": \"cut")
    parsed = parse_tool_calls(text)
    assert parsed.calls == [{"name": "ok", "arguments": {}}]
    assert parsed.content == "a  b  c  d"
    whys = [e["error"] for e in parsed.errors]
    assert whys[0].startswith("not valid JSON") and parsed.errors[0]["block"] == "{not json}"
    assert whys[1:4] == ['expected {"name": ..., "arguments": {...}}', "arguments must be a JSON object",
                         whys[3]] and whys[3].startswith("arguments are not valid JSON")
    assert whys[4:] == ["<tool_call> without </tool_call>", "</tool_call> without <tool_call>"]
    assert parsed.errors[4]["block"] == '{"name": "cut'


def test_openai_shapes_and_response_text():
    calls = [{"name": "calculate_math", "arguments": {"expression": "1+1"}}, {"name": "get_current_time",
                                                                              "arguments": {}}]
    assert to_openai_tool_calls(calls, "call_abc_") == [
        {"id": "call_abc_0", "type": "function",
         "function": {"name": "calculate_math", "arguments": '{"expression": "1+1"}'}},
        {"id": "call_abc_1", "type": "function", "function": {"name": "get_current_time", "arguments": "{}"}}]
    assert tool_response_text({"city": "北京"}) == '{"city": "北京"}'
    assert len(tool_response_text({"result": "9" * 5000})) == MAX_RESPONSE_CHARS
    for bad, message in [({"type": "function"}, r"tools\[0\]: expected"), ("x", r"tools\[0\]: expected"),
                         ({"type": "function", "function": {"name": "a b"}}, "name must match"),
                         ({"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                                         "properties": []}}},
                          "properties must be an object"),
                         ({"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}},
                          "must have type object")]:
        with pytest.raises(ValueError, match=message):
            check_tool_definitions([bad])
    with pytest.raises(ValueError, match="tools must be a list"):
        check_tool_definitions({"type": "function"})
    check_tool_definitions([{"type": "function", "function": {"name": "no_params"}}])
