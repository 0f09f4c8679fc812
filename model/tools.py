"""Tool calling: MiniMind's six tools, your own tools, safe execution, and <tool_call> parsing.

Used by the chat loop (model/chat_cli.py), the OpenAI-compatible server, the web page and the
agentic RL rollout. The model writes MiniMind's layout (its chat template's, 2025-10):

    <tool_call>\\n{"name": "calculate_math", "arguments": {"expression": "2**10"}}\\n</tool_call>

    registry = ToolRegistry()                      MiniMind's six tools (BUILTIN_TOOL_NAMES)
    registry.register(name, fn, parameters, description="", replace=False)
    registry.register_function(fn)                 a function marked with @tool(parameters=...)
    registry.load("path/to/file.py:function")      imports the file, registers the @tool function
    registry.schemas("all" | "name,name" | [...])  the OpenAI `tools` list (file.py:fn items load)
    registry.execute(name, arguments) -> dict      never raises: {"error": ...} for any failure
    registry.execute_call(call) -> dict            a parsed call or an OpenAI tool_calls entry
    parse_tool_calls(text) -> ParsedToolCalls(content, calls, errors)
    format_tool_call(name, arguments) -> str       the template's text for one call
    to_openai_tool_calls(calls, id_prefix)         OpenAI `tool_calls` (arguments as a JSON string)
    tool_response_text(result) -> str              a result as the `tool` message's content
    check_tool_definitions(tools)                  ValueError (one line) for a bad request `tools`

Safety: calculate_math never calls eval (MiniMind's #763); it walks the `ast` of numbers and
arithmetic with bounded sizes. Timeouts use a worker thread, not SIGALRM (MiniMind's #846: no
SIGALRM on Windows). A Python thread cannot be killed, so a timed-out tool keeps running in the
background (a daemon thread, which does not block exit): the built-in tools are bounded by
construction, and the timeout only protects the caller from a slow user tool.
"""
import ast
import functools
import importlib.util
import inspect
import json
import math
import operator
import os
import re
import threading
from collections import namedtuple
from datetime import datetime, timezone

from trainer.errors import UserError, one_line

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
DEFAULT_TIMEOUT_S = 1.0      # MiniMind's signal.alarm(1)
MAX_RESPONSE_CHARS = 2048    # MiniMind cuts each tool response here, so a huge result cannot flood the context


class ToolError(Exception):
    """Raised by a tool for a mistake in its arguments; the message is what the model sees."""


# ---------------------------------------------------------------- calculate_math, without eval
MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 3400          # about 1000 decimal digits: any one operation stays microseconds
_BINARY_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY_OPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# MiniMind's description promises "幂运算、开方" with sqrt(144) as its example, and its training
# run evaluates with `math` in scope, so these names (bare or as math.name) are allowed; nothing else.
MATH_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil,
                  "exp": math.exp, "log": math.log, "log2": math.log2, "log10": math.log10,
                  "sin": math.sin, "cos": math.cos, "tan": math.tan}
MATH_CONSTANTS = {"pi": math.pi, "e": math.e}
# The spellings MiniMind rewrites before evaluating, so a model trained on its data may write them.
_SPELLINGS = (("^", "**"), ("×", "*"), ("÷", "/"), ("−", "-"), ("（", "("), ("）", ")"), ("²", "**2"), ("³", "**3"))


def evaluate_expression(expression):
    """The value (int or float) of an arithmetic expression; ToolError for anything else."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("expression must be a non-empty string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    for old, new in _SPELLINGS:
        expression = expression.replace(old, new)
    try:
        tree = ast.parse(expression.strip(), mode="eval")   # parsing runs nothing
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ToolError(f"not an arithmetic expression ({type(e).__name__})")
    try:
        return _evaluate(tree.body)
    except ToolError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as e:
        raise ToolError(f"{type(e).__name__}: {one_line(e)[:120]}")


def _evaluate(node):
    if isinstance(node, ast.Constant):
        if type(node.value) in (int, float):   # not bool, complex or str
            return _bounded(node.value)
        raise ToolError(f"only numbers are allowed, not {type(node.value).__name__} {node.value!r:.40}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        # Refuse a huge power before computing it: 9**387420489 would take minutes and gigabytes.
        if isinstance(node.op, ast.Pow) and type(left) is int and type(right) is int and abs(left) > 1 \
                and right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise ToolError(f"result too large (over {MAX_INT_BITS} bits)")
        return _bounded(_BINARY_OPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        return _UNARY_OPS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Call) and not node.keywords and _math_name(node.func) in MATH_FUNCTIONS:
        return _bounded(MATH_FUNCTIONS[_math_name(node.func)](*[_evaluate(a) for a in node.args]))
    if _math_name(node) in MATH_CONSTANTS:
        return MATH_CONSTANTS[_math_name(node)]
    what = {ast.Name: "names", ast.Attribute: "attributes", ast.Call: "function calls", ast.Subscript: "subscripts",
            ast.Lambda: "lambdas"}.get(type(node), f"{type(node).__name__} expressions")
    raise ToolError(f"{what} are not allowed: only numbers, + - * / // % ** and "
                    f"{', '.join(MATH_FUNCTIONS)}, {', '.join(MATH_CONSTANTS)}")


def _math_name(node):
    """'sqrt' for `sqrt` or `math.sqrt`, else None: a lookup in our own tables, never a getattr."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math":
        return node.attr
    return None


def _bounded(value):
    if isinstance(value, complex):
        raise ToolError("the result is a complex number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("the result is not finite")
    if isinstance(value, int) and abs(value).bit_length() > MAX_INT_BITS:
        raise ToolError(f"result too large (over {MAX_INT_BITS} bits)")
    return value


def calculate_math(expression):
    return {"result": str(evaluate_expression(expression))}   # MiniMind's {"result": str(value)}


# ---------------------------------------------------------------- the tables (MiniMind's values; units: exact factors)
_LENGTH_M = {"m": 1.0, "km": 1000.0, "cm": 0.01, "mm": 0.001, "miles": 1609.344, "feet": 0.3048,
             "inches": 0.0254, "yards": 0.9144}
_MASS_KG = {"kg": 1.0, "g": 0.001, "pounds": 0.45359237, "ounces": 0.028349523125, "jin": 0.5}
_UNIT_ALIASES = {
    "kilometer": "km", "kilometers": "km", "公里": "km", "千米": "km", "meter": "m", "meters": "m", "米": "m",
    "centimeter": "cm", "centimeters": "cm", "厘米": "cm", "millimeter": "mm", "millimeters": "mm", "毫米": "mm",
    "mile": "miles", "mi": "miles", "英里": "miles", "foot": "feet", "ft": "feet", "英尺": "feet",
    "inch": "inches", "in": "inches", "英寸": "inches", "yard": "yards", "yd": "yards", "码": "yards",
    "kilogram": "kg", "kilograms": "kg", "公斤": "kg", "千克": "kg", "gram": "g", "grams": "g", "克": "g",
    "pound": "pounds", "lb": "pounds", "lbs": "pounds", "磅": "pounds", "ounce": "ounces", "oz": "ounces",
    "盎司": "ounces", "斤": "jin", "c": "celsius", "°c": "celsius", "℃": "celsius", "摄氏度": "celsius",
    "f": "fahrenheit", "°f": "fahrenheit", "℉": "fahrenheit", "华氏度": "fahrenheit"}
_TO_CELSIUS = {"celsius": lambda v: v, "fahrenheit": lambda v: (v - 32) / 1.8}
_FROM_CELSIUS = {"celsius": lambda v: v, "fahrenheit": lambda v: v * 1.8 + 32}


def unit_converter(value, from_unit, to_unit):
    # MiniMind multiplies by one factor per pair (so 30 °C came out as 54 °F); here temperatures are
    # converted properly and lengths and masses go through one base unit, so every pair in a group works.
    src, dst = (_UNIT_ALIASES.get(u.strip().lower(), u.strip().lower()) for u in (from_unit, to_unit))
    for table in (_LENGTH_M, _MASS_KG):
        if src in table and dst in table:
            return {"result": round(value * table[src] / table[dst], 4)}
    if src in _TO_CELSIUS and dst in _FROM_CELSIUS:
        return {"result": round(_FROM_CELSIUS[dst](_TO_CELSIUS[src](value)), 4)}
    known = ", ".join([*_LENGTH_M, *_MASS_KG, *_TO_CELSIUS])
    raise ToolError(f"cannot convert {from_unit} to {to_unit}; units (same kind only): {known}")


_WEATHER = {"北京": ("28°C", "晴"), "上海": ("15°C", "多云"), "广州": ("32°C", "闷热"), "深圳": ("30°C", "晴"),
            "杭州": ("22°C", "阴"), "成都": ("18°C", "小雨"), "武汉": ("25°C", "多云"), "南京": ("20°C", "晴"),
            "西安": ("16°C", "大风"), "重庆": ("26°C", "阴"), "Tokyo": ("12°C", "晴"), "New York": ("8°C", "多云"),
            "London": ("5°C", "小雨"), "Paris": ("10°C", "阴"), "Sydney": ("25°C", "晴朗")}
_CITY_ALIASES = {"beijing": "北京", "shanghai": "上海", "guangzhou": "广州", "shenzhen": "深圳", "hangzhou": "杭州",
                 "chengdu": "成都", "wuhan": "武汉", "nanjing": "南京", "xi'an": "西安", "xian": "西安",
                 "chongqing": "重庆", "tokyo": "Tokyo", "东京": "Tokyo", "new york": "New York", "纽约": "New York",
                 "london": "London", "伦敦": "London", "paris": "Paris", "巴黎": "Paris", "sydney": "Sydney",
                 "悉尼": "Sydney"}
_DEFAULT_WEATHER = ("22°C", "晴")   # MiniMind's answer for a city not in its table


def get_current_weather(location, unit="celsius"):
    temperature, condition = _WEATHER.get(_CITY_ALIASES.get(location.strip().lower(), location.strip()),
                                          _DEFAULT_WEATHER)
    if unit == "fahrenheit":
        temperature = f"{round(float(temperature[:-2]) * 1.8 + 32)}°F"
    return {"city": location, "temperature": temperature, "humidity": "65%", "condition": condition}


# Deterministic: "now" is MiniMind's table's instant (its six zones all show 2025-03-07 06:30 UTC);
# a front end that wants the real clock passes ToolRegistry(clock=lambda: datetime.now(timezone.utc)).
FIXED_NOW = datetime(2025, 3, 7, 6, 30, tzinfo=timezone.utc)
_TIME_TABLE = {"Asia/Shanghai": "2025-03-07 14:30:00", "America/New_York": "2025-03-07 01:30:00",
               "Europe/London": "2025-03-07 06:30:00", "Asia/Tokyo": "2025-03-07 15:30:00",
               "Europe/Paris": "2025-03-07 07:30:00", "Australia/Sydney": "2025-03-07 17:30:00"}


def get_current_time(timezone="Asia/Shanghai", clock=None):
    instant = clock() if clock else FIXED_NOW
    try:
        from zoneinfo import ZoneInfo
        shown = instant.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")
    except Exception:   # unknown zone, or no tz database (Windows without the tzdata package)
        if clock is not None or timezone not in _TIME_TABLE:
            raise ToolError(f"unknown timezone {timezone!r}; use an IANA name such as Asia/Shanghai")
        shown = _TIME_TABLE[timezone]
    return {"datetime": shown, "timezone": timezone}


_RATES = {("USD", "CNY"): 7.21, ("EUR", "CNY"): 7.85, ("GBP", "CNY"): 9.12, ("JPY", "CNY"): 0.048,
          ("USD", "EUR"): 0.92, ("USD", "GBP"): 0.79, ("CNY", "JPY"): 20.83, ("AUD", "CNY"): 4.72}
_CURRENCY_ALIASES = {"RMB": "CNY", "美元": "USD", "人民币": "CNY", "欧元": "EUR", "英镑": "GBP", "日元": "JPY",
                     "澳元": "AUD"}


def get_exchange_rate(from_currency, to_currency):
    src, dst = (_CURRENCY_ALIASES.get(c.strip().upper(), c.strip().upper()) for c in (from_currency, to_currency))
    if (src, dst) in _RATES:
        rate = _RATES[src, dst]
    elif (dst, src) in _RATES:
        rate = round(1 / _RATES[dst, src], 4)
    elif src == dst and any(src in pair for pair in _RATES):
        rate = 1.0
    else:   # MiniMind answers 1.0 for any pair it lacks; a made-up rate would teach the model nothing
        codes = sorted({c for pair in _RATES for c in pair})
        raise ToolError(f"no rate for {from_currency}->{to_currency}; currencies: {', '.join(codes)}")
    return {"from": from_currency, "to": to_currency, "rate": rate}


_TRANSLATIONS = {("你好世界", "english"): "Hello World", ("Good morning", "chinese"): "早上好",
                 ("今天天气真好", "english"): "The weather is nice today", ("I love programming", "chinese"): "我喜欢编程",
                 ("机器学习很有趣", "english"): "Machine learning is interesting", ("Happy birthday", "chinese"): "生日快乐"}
_LANGUAGE_ALIASES = {"en": "english", "英文": "english", "英语": "english", "zh": "chinese", "中文": "chinese",
                     "汉语": "chinese"}


def translate_text(text, target_language):
    language = _LANGUAGE_ALIASES.get(target_language.strip().lower(), target_language.strip().lower())
    translated = _TRANSLATIONS.get((text.strip(), language))
    if translated is None:   # MiniMind echoes the text back, which reads as a (wrong) translation
        raise ToolError(f"no translation of {text!r:.60} into {target_language} in the demo table")
    return {"translated_text": translated}


def _params(properties, required):
    return {"type": "object", "properties": properties, "required": required}


_STR = {"type": "string"}
# MiniMind's names, argument names, types and required lists (trainer/train_agent.py; weather's
# optional `unit` and the descriptions follow scripts/eval_toolcall.py, in English).
BUILTIN_TOOLS = [
    (calculate_math, "Evaluate an arithmetic expression: + - * / // % **, parentheses, sqrt() and other math",
     _params({"expression": {**_STR, "description": "the expression, e.g. 123+456, 2**10, sqrt(144)"}},
             ["expression"])),
    (unit_converter, "Convert a value between units of length, weight or temperature",
     _params({"value": {"type": "number", "description": "the value to convert"},
              "from_unit": {**_STR, "description": "source unit, e.g. km, miles, kg, pounds, celsius, fahrenheit"},
              "to_unit": {**_STR, "description": "target unit"}}, ["value", "from_unit", "to_unit"])),
    (get_current_weather, "Get the current weather of a city: temperature, humidity and condition",
     _params({"location": {**_STR, "description": "city name, e.g. Beijing, 上海, New York"},
              "unit": {**_STR, "enum": ["celsius", "fahrenheit"], "default": "celsius"}}, ["location"])),
    (get_current_time, "Get the current date and time in a timezone",
     _params({"timezone": {**_STR, "description": "IANA timezone, e.g. Asia/Shanghai, America/New_York",
                           "default": "Asia/Shanghai"}}, [])),
    (get_exchange_rate, "Get the exchange rate between two currencies",
     _params({"from_currency": {**_STR, "description": "currency code, e.g. USD, CNY, EUR"},
              "to_currency": {**_STR, "description": "currency code, e.g. USD, CNY, EUR"}},
             ["from_currency", "to_currency"])),
    (translate_text, "Translate text into a target language",
     _params({"text": {**_STR, "description": "the text to translate"},
              "target_language": {**_STR, "description": "target language, e.g. english, chinese"}},
             ["text", "target_language"])),
]
BUILTIN_TOOL_NAMES = tuple(fn.__name__ for fn, _, _ in BUILTIN_TOOLS)


# ---------------------------------------------------------------- schemas and argument checks
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")   # OpenAI's rule for function names
_JSON_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
               "object": (dict,), "array": (list,), "null": (type(None),)}


def tool_schema(name, parameters, description=""):
    """One entry of OpenAI's `tools` list."""
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def tool(parameters=None, description=None, name=None):
    """Decorator marking a function as a tool (for registry.load / register_function); the
    description defaults to the docstring's first line."""
    def mark(fn):
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        fn.tool_schema = tool_schema(name or fn.__name__, parameters or _params({}, []),
                                     doc if description is None else description)
        return fn
    return mark


def _schema_problem(schema, where):
    """Why `schema` is not a JSON schema we can check arguments against, or None."""
    if not isinstance(schema, dict):
        return f"{where}: a schema must be an object"
    types = schema.get("type", [])
    for t in types if isinstance(types, list) else [types]:
        if t not in _JSON_TYPES:
            return f"{where}: unknown type {t!r} (one of {', '.join(_JSON_TYPES)})"
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        return f"{where}: properties must be an object"
    required = schema.get("required", [])
    if not isinstance(required, list) or any(not isinstance(r, str) for r in required):
        return f"{where}: required must be a list of names"
    if "enum" in schema and not isinstance(schema["enum"], list):
        return f"{where}: enum must be a list"
    for key, sub in list(props.items()) + ([("items", schema["items"])] if "items" in schema else []):
        problem = _schema_problem(sub, f"{where}.{key}")
        if problem:
            return problem
    return None


def check_tool_definitions(tools):
    """ValueError with one line for a request's `tools` that is not a list of OpenAI function tools."""
    if not isinstance(tools, list):
        raise ValueError("tools must be a list")
    for i, entry in enumerate(tools):
        fn = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or entry.get("type") != "function" or not isinstance(fn, dict):
            raise ValueError(f"tools[{i}]: expected {{\"type\": \"function\", \"function\": {{...}}}}")
        if not isinstance(fn.get("name"), str) or not _NAME_RE.fullmatch(fn["name"]):
            raise ValueError(f"tools[{i}].function.name must match [A-Za-z0-9_-]{{1,64}}")
        params = fn.get("parameters", _params({}, []))
        problem = _schema_problem(params, f"tools[{i}].function.parameters")
        if problem or params.get("type", "object") != "object":
            raise ValueError(problem or f"tools[{i}].function.parameters must have type object")


def _argument_problem(value, schema, where):
    """Why `value` does not fit `schema` (a subset of JSON schema: type, enum, properties,
    required, items, additionalProperties), or None."""
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        # bool is an int in Python but not a number in JSON; 3.0 counts as an integer, as JSON schema says
        fits = any(isinstance(value, _JSON_TYPES[t]) and not (isinstance(value, bool) and t in ("number", "integer"))
                   or (t == "integer" and isinstance(value, float) and value.is_integer()) for t in types)
        if not fits:
            return f"{where} must be {' or '.join(types)}, not {type(value).__name__} {json.dumps(value, ensure_ascii=False, default=str)[:40]}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {json.dumps(schema['enum'], ensure_ascii=False)}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            return f"{where} is missing required {', '.join(missing)}"
        for key, item in value.items():
            if key in props:
                problem = _argument_problem(item, props[key], f"{where}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where} has unknown {key!r} (expected: {', '.join(props) or 'none'})"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = _argument_problem(item, schema["items"], f"{where}[{i}]")
            if problem:
                return problem
    return None


# ---------------------------------------------------------------- the registry
class ToolRegistry:
    """Named tools: a function plus its OpenAI schema. Starts with MiniMind's six."""

    def __init__(self, builtins=True, timeout_s=DEFAULT_TIMEOUT_S, clock=None):
        self.timeout_s = timeout_s
        self._tools = {}   # name -> (function, parameters as checked, OpenAI schema), in registration order
        for fn, description, parameters in (BUILTIN_TOOLS if builtins else []):
            name = fn.__name__
            self.register(name, functools.partial(fn, clock=clock) if clock and name == "get_current_time" else fn,
                          parameters, description)

    def names(self):
        return list(self._tools)

    def register(self, name, fn, parameters, description="", replace=False):
        """Add a tool; UserError when the name, schema or function signature is wrong."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise UserError(f"tool name {name!r}: use 1-64 letters, digits, _ or -")
        if name in self._tools and not replace:
            raise UserError(f"tool {name} is already registered; pass replace=True to replace it")
        if not callable(fn):
            raise UserError(f"tool {name}: {fn!r} is not a function")
        problem = _schema_problem(parameters, f"tool {name} parameters")
        if problem or parameters.get("type") != "object":
            raise UserError(problem or f"tool {name} parameters: must have type object")
        signature_problem = _signature_problem(fn, parameters)
        if signature_problem:
            raise UserError(f"tool {name}: {signature_problem}")
        # Arguments go to the function as keywords, so an argument the schema lacks is refused.
        checked = {**parameters, "additionalProperties": False}
        self._tools[name] = (fn, checked, tool_schema(name, parameters, description))
        return fn

    def register_function(self, fn, replace=False):
        """Register a function marked with @tool(...)."""
        schema = getattr(fn, "tool_schema", None)
        if not schema:
            raise UserError(f"{getattr(fn, '__name__', fn)}: mark it with @tool(parameters={{...}}) from model.tools")
        f = schema["function"]
        return self.register(f["name"], fn, f["parameters"], f["description"], replace=replace)

    def load(self, spec):
        """"path/to/file.py:function" -> the registered tool's name (the file's @tool function;
        it may replace a built-in of the same name)."""
        path, _, attr = spec.rpartition(":")
        if not path.endswith(".py") or not attr or not os.path.isfile(path):
            raise UserError(f"--tools {spec}: expected path/to/file.py:function_name with an existing file")
        module_spec = importlib.util.spec_from_file_location("tool_" + re.sub(r"\W", "_", os.path.abspath(path)), path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise UserError(f"--tools {spec}: importing {path} failed ({type(e).__name__}: {one_line(e)[:160]})")
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise UserError(f"--tools {spec}: {path} has no function {attr!r}")
        fn = self.register_function(fn, replace=True)
        return fn.tool_schema["function"]["name"]

    def select(self, spec):
        """"all" | "name,name" | a list (file.py:function items are loaded) -> tool names, in order."""
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
        names = []
        for item in items:
            if item == "all":
                names += self.names()
            elif item in self._tools:
                names.append(item)
            elif ".py:" in item:
                names.append(self.load(item))
            else:
                raise UserError(f"--tools {spec}: unknown tool {item!r}; pass all or a comma-separated list of "
                                f"{', '.join(self.names())} (or path/to/file.py:function)")
        if not names:
            raise UserError(f"--tools {spec!r}: no tools named; pass all or name,name")
        return list(dict.fromkeys(names))

    def schemas(self, spec="all"):
        """The OpenAI `tools` list for a selection (see select)."""
        return [self._tools[name][2] for name in self.select(spec)]

    def execute(self, name, arguments, timeout_s=None):
        """Run one call; the result (a dict) is what the model sees. Never raises."""
        if not isinstance(name, str) or name not in self._tools:
            return {"error": f"unknown tool {name!r}; available: {', '.join(self.names())}"}
        arguments, problem = _decode_arguments(arguments)
        fn, parameters, _ = self._tools[name]
        problem = problem or _argument_problem(arguments, parameters, "arguments")
        if problem:
            return {"error": f"{name}: {problem}"}
        return _run_with_timeout(name, fn, arguments, self.timeout_s if timeout_s is None else timeout_s)

    def execute_call(self, call, timeout_s=None):
        """Run a parsed call ({"name", "arguments"}) or an OpenAI tool_calls entry."""
        call = call.get("function", call) if isinstance(call, dict) else {}
        return self.execute(call.get("name"), call.get("arguments"), timeout_s)


def _signature_problem(fn, parameters):
    """A schema the function cannot be called with is reported at registration, not at the first call."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_POSITIONAL]
    except (TypeError, ValueError):
        return None   # no signature to read (some builtins): trust the schema
    unknown = set(parameters.get("properties", {})) - {p.name for p in params}
    unsent = {p.name for p in params if p.default is p.empty and p.kind != p.VAR_KEYWORD}
    unsent -= set(parameters.get("required", []))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params):
        return f"the function takes no argument {', '.join(sorted(unknown))} that the schema describes"
    return f"the function needs {', '.join(sorted(unsent))}, which the schema does not require" if unsent else None


def _run_with_timeout(name, fn, arguments, timeout_s):
    box = {}

    def work():
        try:
            box["value"] = fn(**arguments)
        except ToolError as e:
            box["error"] = f"{name}: {e}"
        except BaseException as e:   # even SystemExit from a user tool becomes a result, not an exit
            box["error"] = f"{name} failed: {type(e).__name__}: {one_line(e)[:200]}"

    worker = threading.Thread(target=work, name=f"tool-{name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return {"error": f"{name} timed out after {timeout_s:g} s"}
    if "error" in box:
        return {"error": box["error"]}
    value = box["value"]
    return value if isinstance(value, dict) else {"result": value}


def tool_response_text(result):
    """A result as the `tool` message's content: JSON, cut at MiniMind's 2048 characters."""
    return json.dumps(result, ensure_ascii=False, default=str)[:MAX_RESPONSE_CHARS]


# ---------------------------------------------------------------- parsing the model's text
ParsedToolCalls = namedtuple("ParsedToolCalls", "content calls errors")
_BLOCK_RE = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.S)


def parse_tool_calls(text):
    """ParsedToolCalls(content, calls, errors) of a model's turn, never raising.

    calls: [{"name": str, "arguments": dict}] in order (arguments given as a JSON string are decoded);
    errors: [{"error": why, "block": the text inside the tags}] for malformed or unclosed blocks;
    content: the text outside the blocks, stripped (MiniMind's server strips it the same way)."""
    pieces, calls, errors, pos = [], [], [], 0
    for m in _BLOCK_RE.finditer(text):
        pieces.append(text[pos:m.start()])
        pos = m.end()
        call, why = _parse_block(m.group(1))
        if call:
            calls.append(call)
        else:
            errors.append({"error": why, "block": m.group(1)})
    rest = text[pos:]
    if TOOL_CALL_OPEN in rest:   # cut off mid-call (max_new_tokens): an attempt, not answer text
        start = rest.index(TOOL_CALL_OPEN)
        errors.append({"error": f"{TOOL_CALL_OPEN} without {TOOL_CALL_CLOSE}",
                       "block": rest[start + len(TOOL_CALL_OPEN):]})
        rest = rest[:start]
    content = "".join(pieces) + rest
    if TOOL_CALL_CLOSE in content:
        errors.append({"error": f"{TOOL_CALL_CLOSE} without {TOOL_CALL_OPEN}", "block": ""})
        content = content.replace(TOOL_CALL_CLOSE, "")
    return ParsedToolCalls(content.strip(), calls, errors)


def _parse_block(body):
    """({"name", "arguments"}, None) or (None, why)."""
    try:
        data = json.loads(body.strip())
    except ValueError as e:
        return None, f"not valid JSON ({e})"
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None, 'expected {"name": ..., "arguments": {...}}'
    arguments, why = _decode_arguments(data.get("arguments"))
    if why or not isinstance(arguments, dict):
        return None, why or "arguments must be a JSON object"
    return {"name": data["name"], "arguments": arguments}, None


def _decode_arguments(arguments):
    """(arguments, None) or (None, why): a JSON string (OpenAI's form) is decoded; empty or null is {}."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else None
        except ValueError as e:
            return None, f"arguments are not valid JSON ({e})"
    return ({} if arguments is None else arguments), None


def format_tool_call(name, arguments):
    """One call as the chat template renders it (json.dumps as transformers' tojson: no ASCII escaping)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f'{TOOL_CALL_OPEN}\n{{"name": "{name}", "arguments": {args}}}\n{TOOL_CALL_CLOSE}'


def to_openai_tool_calls(calls, id_prefix="call_"):
    """Parsed calls -> OpenAI's `tool_calls` (ids id_prefix + index; arguments as a JSON string)."""
    return [{"id": f"{id_prefix}{i}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
            for i, c in enumerate(calls)]
