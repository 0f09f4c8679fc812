"""The user's data files: paths resolved to sources, each stage's line format, and each line parsed
and checked, with one-line DataErrors ("PATH:LINE: expected ..., got ...; what to do").

Fields (MiniMind's JSONL, one object per line; the same columns in Parquet files and saved datasets):
    pretrain  {"text": "..."}
    SFT       {"conversations": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}; tool
              calling as MiniMind's: "tools" on the system message, "tool_calls" on an assistant message,
              its results as "tool" messages (a list or its JSON text; _check_messages says how)
    DPO       {"chosen": [messages], "rejected": [messages]}, and an optional "margin": a number (TRL's
              reward margin; train_reward.py's loss is -log sigmoid(r_chosen - r_rejected - margin))
    RLAIF     {"conversations": [messages ending with a user turn, then an optional (empty) assistant
              turn]} plus any other fields, which reach the reward functions ("gt": [...] for the gt reward)
A data path is a JSONL or .parquet file, a `Dataset.save_to_disk` folder, or a glob / folder of shards.
The parsing and checking functions are pure: they run in the token cache's map workers
(dataset/token_cache.py) and in the streaming reader (dataset/streaming.py).
"""
import glob
import json
import math
import os

ROLES = ("system", "user", "assistant", "tool")
SHARD_EXTS = (".jsonl", ".json", ".parquet")


class DataError(ValueError):
    """A problem with the user's data file: "PATH:LINE: expected ..., got ...; what to do"."""

    def __init__(self, message, path=None, line=None):
        super().__init__(message)
        self.path, self.line = path, line

    def __reduce__(self):  # survives the trip back from a worker process
        return (DataError, (str(self), self.path, self.line))


def _short(value, limit=60):
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _type_name(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def data_error(path, line, expected, got, todo):
    where = f"{path}:{line}" if line else f"{path}"
    return DataError(f"{where}: expected {expected}, got {got}; {todo}", path, line)


class _Kind:
    """A stage's data: its fields ("streams", one token sequence each) and what a line looks like."""

    def __init__(self, name, streams, example):
        self.name, self.streams, self.example = name, streams, example


PRETRAIN = _Kind("pretrain", ("text",), '{"text": "..."}')
SFT = _Kind("sft", ("conversations",), '{"conversations": [{"role": "user", "content": "..."}, '
            '{"role": "assistant", "content": "..."}]}')
DPO = _Kind("dpo", ("chosen", "rejected"), '{"chosen": [messages], "rejected": [messages]}')
RLAIF = _Kind("rlaif", ("conversations",), '{"conversations": [{"role": "user", "content": "..."}, '
              '{"role": "assistant", "content": ""}]}')
_KINDS = {k.name: k for k in (PRETRAIN, SFT, DPO, RLAIF)}


# ----------------------------------------------------------------------------------------------
# Parsing and validation (pure functions; they run in the map's worker processes)

def _json_problem(e, text):
    """json's message, said plainly: "unterminated string starting at column 10", "the line ends
    before the JSON object does (column 15)", "expecting ',' delimiter at column 12"."""
    if e.msg.startswith("Unterminated string"):
        return f"unterminated string starting at column {e.colno}"
    if e.pos >= len(text.rstrip()):
        return f"the line ends before the JSON object does (column {e.colno})"
    return f"{e.msg[0].lower()}{e.msg[1:].removesuffix(' at')} at column {e.colno}"


def _parse_line(raw, path, lineno):
    """bytes -> dict, or None for a blank line (tolerated, e.g. a trailing newline)."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise data_error(path, lineno, "UTF-8 text", f"an invalid byte at column {e.start + 1}",
                         "re-save the file as UTF-8") from None
    if lineno == 1:
        text = text.lstrip("\ufeff")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise data_error(path, lineno, "one JSON object per line", f"invalid JSON ({_json_problem(e, text)})",
                         "fix or delete this line") from None
    if not isinstance(obj, dict):
        raise data_error(path, lineno, "a JSON object per line", _type_name(obj),
                         "each line must be an object such as {\"text\": \"...\"}")
    return obj


def _field(obj, name, path, lineno, example):
    if name not in obj:
        raise data_error(path, lineno, f'a "{name}" field', f"keys {sorted(obj)}",
                         f"lines of this file must look like {example}")
    return obj[name]


def _check_messages(value, field, path, lineno):
    """Validate one conversation; returns [{"role", "content"}] with missing roles filled in.

    A turn without "role" takes the role that alternation asks for (user after system/assistant or at
    the start, assistant after user), as in MiniMind's early role-less SFT files. A system turn is
    allowed first only; after it turns must alternate user/assistant, with at least one assistant.

    Tool calling, in MiniMind's format (its template renders them; see _check_tools, _check_tool_calls):
    "tools" on the system message; "tool_calls" on an assistant message (its "content" may then be
    empty, null or left out), whose results follow as one or more "tool" messages, then an assistant turn.
    The returned system message keeps its tools (decoded) and an assistant message its tool_calls
    ([{"name", "arguments"}], arguments as written: a JSON string stays that string).
    MiniMind-3's "reasoning_content" on an assistant message goes into its content, in front of the answer,
    as "<think>\n...\n</think>\n\n" (which every template here renders: MiniMind-3's takes it apart again).
    """
    if not isinstance(value, list) or not value:
        raise data_error(path, lineno, f'"{field}" to be a non-empty list of messages',
                         _short(value), 'write it as [{"role": "user", "content": "..."}, ...]')
    messages, prev = [], None
    for k, msg in enumerate(value, 1):
        if not isinstance(msg, dict):
            raise data_error(path, lineno, f'message {k} of "{field}" to be an object',
                             _type_name(msg), 'write messages as {"role": ..., "content": ...}')
        calls = msg.get("tool_calls")
        content = msg.get("content")
        if content is None and calls not in (None, "", []):
            content = ""  # OpenAI's assistant message with tool calls has "content": null
        if not isinstance(content, str):
            got = "no content" if "content" not in msg else _type_name(content)
            raise data_error(path, lineno, f'message {k} of "{field}" to have a string "content"',
                             got, "give every message its text")
        want = {"user": "assistant", "tool": "assistant", "calls": "tool"}.get(prev, "user")
        role = msg.get("role", want)
        if role not in ROLES:
            raise data_error(path, lineno, f'message {k} of "{field}" to have role system, user, assistant '
                             'or tool', f"role {_short(role)}", "fix the role")
        if role == "system" and k != 1:
            raise data_error(path, lineno, f'a system message only as message 1 of "{field}"',
                             f"one as message {k}", "merge it into the first message")
        if prev == "calls" and role != "tool":
            raise data_error(path, lineno, f'message {k} of "{field}" to have role tool (the results of the '
                             f'tool_calls of message {k - 1})', f"role {role}",
                             "add the tool results after the calls, or drop the tool_calls")
        if role == "tool" and prev not in ("calls", "tool"):
            raise data_error(path, lineno, f'a tool message in "{field}" only after an assistant message with '
                             'tool_calls, or after another tool message', f"one as message {k} after "
                             + (f"{'an' if prev == 'assistant' else 'a'} {prev} message" if prev else "none"),
                             "give the assistant message before it its tool_calls, or fix the order")
        if role not in ("system", "tool") and role != want:
            raise data_error(path, lineno, f'message {k} of "{field}" to have role {want} (turns '
                             'alternate user/assistant after an optional system message)',
                             f"role {role}", "fix the roles or the order of the messages")
        reasoning = msg.get("reasoning_content")
        if reasoning not in (None, ""):
            if role != "assistant" or not isinstance(reasoning, str):
                raise data_error(path, lineno, f'"reasoning_content" of message {k} of "{field}" to be the '
                                 "text of an assistant message's thinking", f"{_type_name(reasoning)} on a {role} "
                                 "message", "drop it or move it to the assistant's turn")
            if "</think>" not in content:  # MiniMind-3's field: the thinking, before the answer, as one text
                content = f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{content.lstrip(chr(10))}"
        out = {"role": role, "content": content}
        for key in ("tools", "functions"):  # "functions": MiniMind 2025-10's name for the system's tools
            if msg.get(key) not in (None, "", []):
                if role != "system":
                    raise data_error(path, lineno, f'"{key}" only on the system message (message 1) of '
                                     f'"{field}"', f"it on message {k}, a {role} message",
                                     "move the tool list to the system message")
                out.setdefault("tools", _check_tools(msg[key], key, f'of message {k} of "{field}"', path, lineno))
        if calls not in (None, "", []):
            if role != "assistant":
                raise data_error(path, lineno, f'"tool_calls" only on assistant messages of "{field}"',
                                 f"them on message {k}, a {role} message", "move them to the assistant's turn")
            out["tool_calls"] = _check_tool_calls(calls, f'of message {k} of "{field}"', path, lineno)
        messages.append(out)
        prev = "calls" if "tool_calls" in out else role
    if not any(m["role"] == "assistant" for m in messages):
        raise data_error(path, lineno, f'at least one assistant message in "{field}"',
                         "none", "add the answer the model should learn")
    return messages


def _json_value(value, where, expected, path, lineno):
    """A field given as JSON text (MiniMind-3's files store "tools" and "tool_calls" as strings) decoded."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise data_error(path, lineno, f"{where} to be {expected}",
                         f"a string that is not JSON ({_json_problem(e, value)}): {_short(value)}",
                         "fix the JSON") from None


def _function_part(entry, item, place, path, lineno):
    """An OpenAI {"type": "function", "function": {...}} entry's function, or the entry itself."""
    if not isinstance(entry, dict):
        raise data_error(path, lineno, f"{item} {place} to be an object", _type_name(entry),
                         'write it as {"name": ..., ...} or {"type": "function", "function": {"name": ..., ...}}')
    fn = entry.get("function", entry)
    if not isinstance(fn, dict):
        raise data_error(path, lineno, f'"function" of {item} {place} to be an object', _type_name(fn),
                         'write it as {"type": "function", "function": {"name": ..., ...}}')
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        got = f"keys {sorted(fn)}" if name is None else f"name {_short(name)}"
        raise data_error(path, lineno, f'{item} {place} to have a "name"', got, "give the function its name")
    return fn


def _check_tools(value, key, place, path, lineno):
    """The system message's tools: a list (or its JSON text) of OpenAI function tools, or of bare
    {"name", "description", "parameters"} functions; rendered as given (one tojson line each)."""
    where, expected = f'"{key}" {place}', "a list of tools (or that list as a JSON string)"
    tools = _json_value(value, where, expected, path, lineno)
    if not isinstance(tools, list):
        raise data_error(path, lineno, f"{where} to be {expected}", _type_name(tools),
                         'write it as [{"type": "function", "function": {"name": ..., "parameters": {...}}}]')
    for i, entry in enumerate(tools):
        fn = _function_part(entry, f"{key}[{i}]", place, path, lineno)
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            raise data_error(path, lineno, f"the parameters of {key}[{i}] {place} to be a JSON schema object",
                             _type_name(fn["parameters"]), "fix or leave out the parameters")
    return tools


def _check_tool_calls(value, place, path, lineno):
    """An assistant message's tool_calls: a list (or its JSON text) of {"name", "arguments"} or OpenAI's
    {"type": "function", "function": {"name", "arguments"}}; arguments an object or a JSON string of one
    (null, missing or "" mean no arguments: {}). Returns [{"name", "arguments"}], strings as written."""
    where, expected = f'"tool_calls" {place}', "a list of tool calls (or that list as a JSON string)"
    calls = _json_value(value, where, expected, path, lineno)
    if not isinstance(calls, list):
        raise data_error(path, lineno, f"{where} to be {expected}", _type_name(calls),
                         'write it as [{"name": ..., "arguments": {...}}]')
    out = []
    for i, entry in enumerate(calls):
        fn = _function_part(entry, f"tool_calls[{i}]", place, path, lineno)
        arguments = fn.get("arguments")
        if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
            arguments = {}
        where = f"the arguments of tool_calls[{i}] {place}"
        decoded = _json_value(arguments, where, "a JSON object", path, lineno)
        if not isinstance(decoded, dict):
            raise data_error(path, lineno, f"{where} to be a JSON object",
                             _type_name(decoded) + ("" if decoded is arguments else " (as a JSON string)"),
                             'write them as {"name": value, ...}')
        out.append({"name": fn["name"], "arguments": arguments})
    return out


def _check_margin(obj, path, lineno):
    """A DPO line's optional "margin" (0.0 when absent or null): a finite number."""
    value = obj.get("margin")
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise data_error(path, lineno, '"margin" to be a number (how far the chosen answer should score above '
                         'the rejected one)', _short(value), "fix this line or leave the field out")
    return float(value)


def _check_prompt(value, path, lineno):
    """An RLAIF prompt: the conversation without its last assistant turn (MiniMind's rlaif files end with an
    empty one), which must then end with a user turn."""
    if isinstance(value, list) and value and isinstance(value[-1], dict) and value[-1].get("role") == "assistant":
        value = value[:-1]
    if not isinstance(value, list) or not any(isinstance(m, dict) and m.get("role", "user") == "user" for m in value):
        raise data_error(path, lineno, '"conversations" with a user turn to answer', _short(value),
                         f"lines of this file must look like {RLAIF.example}")
    # the checks of a conversation, with the answer to come standing in as the last turn
    return _check_messages(value + [{"role": "assistant", "content": ""}], "conversations", path, lineno)[:-1]


def _pretrain_text(obj, path, lineno):
    text = _field(obj, "text", path, lineno, PRETRAIN.example)
    if not isinstance(text, str):
        raise data_error(path, lineno, '"text" to be a string', _type_name(text),
                         f"lines of this file must look like {PRETRAIN.example}")
    return text


# ----------------------------------------------------------------------------------------------
# Inputs

def resolve_sources(path, what="a JSONL file"):
    """--data_path -> [(file or folder, "jsonl" | "parquet" | "saved")], shards sorted by name."""
    if glob.has_magic(path):
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f) or _is_saved(f))
        if not files:
            raise data_error(path, None, "files matching this pattern", "none", "check the pattern")
    elif not os.path.exists(path):
        raise data_error(path, None, what, "no such file",
                         "check the path, or download/generate the data first")
    elif os.path.isdir(path) and not _is_saved(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(SHARD_EXTS))
        if not files:
            raise data_error(path, None, f"{what}, a saved dataset or a folder of .jsonl/.parquet shards",
                             "a folder without them", "pass the file, or a folder that holds the shards")
    else:
        files = [path]
    out = []
    for f in files:
        if not os.path.isdir(f) and os.path.getsize(f) == 0:
            raise data_error(f, None, "at least one JSON line", "an empty file",
                             "check the file was fully written")
        out.append((f, "saved" if os.path.isdir(f) else "parquet" if f.endswith(".parquet") else "jsonl"))
    return out


def _size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return os.path.getsize(path)


def _is_saved(path):
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, f))
                                       for f in ("state.json", "dataset_dict.json"))

