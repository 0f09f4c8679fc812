"""Reward functions for the RL stages, with TRL's signature:

    f(prompts, completions, completion_ids, **fields) -> [float or None, one per completion]

`prompts` / `completions` are texts, `completion_ids` lists of token ids, and every other field of the
data line arrives by name, one value per completion (`gt` below). None skips a completion for that
function; a completion that every function skips gets no advantage.

Built-ins (names for --reward_funcs):
    format        MiniMind2's reasoning format terms (its 2025-10 train_grpo.py, for --reasoning 1):
                  0.5 for exactly "<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>", plus 0.25 for
                  each of the four tags that appears exactly once
    length        MiniMind's 2026 length term: +0.5 for 20..800 characters, else -0.5
    repetition    MiniMind's 2026 repetition penalty: minus the share of repeated word 3-grams of the
                  answer (after </think>), times 2 x 0.5, capped at 0.5
    gt            the share of the line's "gt" strings the answer (after </think>) contains, numbers
                  compared as numbers (MiniMind's agent-RL check); None for a line without gt
    agent         MiniMind's 2026 agent reward (train_agent.py's default) over a trajectory's turns and tool
                  calls (fields turns, calls, unfinished, tools; a one-turn completion without them):
                  tag balance, the valid calls against len(gt), gt in the final answer, the unfinished and
                  repetition penalties, clipped to +-3
    reward_model  a reward model (--reward_model_path): train_reward.py's reward_{dim}.pth (its size read
                  from its tensors), a transformers sequence-classification folder (scripts/convert_model.py
                  exports one), or a remote-code model with InternLM2's get_score as MiniMind uses; scores
                  clipped to +-3. A classifier reads the conversation as the chat template renders it.
Your own: --reward_funcs path/to/file.py:name (any mix with the built-ins), weights --reward_weights.
"""
import importlib.util
import math
import os
import re

import torch

from model.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, _argument_problem
from trainer.errors import UserError

THINK_END = "</think>"


def answer_part(text):
    """The answer: what follows the first </think> (the whole text when there is none), <answer> tags off."""
    answer = text.split(THINK_END, 1)[1] if THINK_END in text else text
    return answer.replace("<answer>", "").replace("</answer>", "").strip()


# ----------------------------------------------------------------------------------------------
# MiniMind's rules

_FORMAT_RE = (re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.S),
              re.compile(r"^<think>\n.*?\n</think>\n\n<answer>\n.*?\n</answer>$", re.S))


def format_reward(completions, **kwargs):
    out = []
    for text in completions:
        r = 0.5 if any(p.match(text) for p in _FORMAT_RE) else 0.0
        r += sum(0.25 for tag in ("<think>", "</think>", "<answer>", "</answer>") if text.count(tag) == 1)
        out.append(r)
    return out


def length_reward(completions, **kwargs):
    return [0.5 if 20 <= len(text.strip()) <= 800 else -0.5 for text in completions]


def repetition_penalty(text, n=3, cap=0.5):
    tokens = re.findall(r"\w+|[^\w\s]", text.lower())
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return min(cap, (len(grams) - len(set(grams))) * cap * 2 / len(grams)) if grams else 0.0


def repetition_reward(completions, **kwargs):
    return [-repetition_penalty(answer_part(text)) for text in completions]


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])")


def gt_found(text, gt):
    """The gt strings that `text` contains: as text (case-insensitive), or a number equal to one in it."""
    numbers = [float(x) for x in _NUMBER.findall(text.replace(",", ""))]
    found = []
    for g in gt:
        s = str(g).strip()
        plain = s.replace(",", "")
        if (s and s.lower() in text.lower()) or (re.fullmatch(r"[-+]?\d+(?:\.\d+)?", plain) and
                                                  any(abs(float(plain) - x) < 1e-6 for x in numbers)):
            found.append(g)
    return found


def gt_reward(completions, gt=None, **kwargs):
    gts = gt if gt is not None else [None] * len(completions)
    out = []
    for text, g in zip(completions, gts):
        if not g:
            out.append(None)
            continue
        g = [g] if isinstance(g, str) else list(g)
        out.append(len(gt_found(answer_part(text), g)) / len(g))
    return out


# the agent reward: MiniMind's for multi-turn tool trajectories (train_agent.py passes turns, calls, tools)

def _answer(turn_text):
    return turn_text.split("</think>", 1)[-1].strip() if "</think>" in turn_text else turn_text.strip()


def valid_calls(calls, tools):
    """How many calls name one of the prompt's tools with arguments that fit its schema (MiniMind counts a
    call valid when its name is offered and its required arguments are given)."""
    schemas = {t.get("function", t).get("name"): t.get("function", t).get("parameters", {}) for t in tools}
    return sum(1 for c in calls if c.name in schemas and _argument_problem(c.arguments, schemas[c.name], "arguments")
               is None)


def agent_reward(completions, gt=None, turns=None, unfinished=None, calls=None, tools=None, **kwargs):
    """MiniMind's agent reward, per trajectory (its 2026 train_agent.py calculate_rewards, without the
    reward model: pass reward_model as another reward). Every turn: -0.5 per unbalanced <tool_call> tag.
    Without any call: +0.5 for an answer of 5-800 characters (else -0.5), and for a thinking answer +1 for
    20-300 characters of thought (else -0.5), +0.25 for one </think> (else -0.25). With calls: +0.5 when
    the valid calls number len(gt) and none is invalid, else -0.5 per call of difference; +2.5 x the share
    of gt found in the final answer (none when unfinished); -0.5 when unfinished. Both: minus the
    repetition penalty of the answer; clipped to +-3."""
    out = []
    for i, response in enumerate(completions):
        texts = turns[i] if turns is not None else [response]
        answers = [_answer(t) for t in texts]
        answer = answers[-1] if answers else response.strip()
        made = calls[i] if calls is not None else []
        reward = -0.5 * sum(abs(a.count(TOOL_CALL_OPEN) - a.count(TOOL_CALL_CLOSE)) for a in answers)
        if not made:
            reward += 0.5 if 5 <= len(response.strip()) <= 800 else -0.5
            if "</think>" in response:
                think, answer = response.split("</think>", 1)
                reward += 1.0 if 20 <= len(think.strip()) <= 300 else -0.5
                reward += 0.25 if response.count("</think>") == 1 else -0.25
                answer = answer.strip()
            reward -= repetition_penalty(answer)
        else:
            want = gt[i] if gt is not None and gt[i] else []
            want = [want] if isinstance(want, str) else list(want)
            ok = valid_calls(made, tools[i] if tools is not None else [])
            gap = abs(ok - len(want)) + max(0, len(made) - ok)
            reward += 0.5 if gap == 0 else -0.5 * gap
            stop = bool(unfinished[i]) if unfinished is not None else False
            final = "" if stop else (answer.split(TOOL_CALL_CLOSE)[-1] if TOOL_CALL_CLOSE in answer else answer)
            if want:
                reward += 2.5 * len(gt_found(final, want)) / len(want)
            if stop:
                reward -= 0.5
            reward -= repetition_penalty(final or answer)
        out.append(max(min(reward, 3.0), -3.0))
    return out


BUILTINS = {"format": format_reward, "length": length_reward, "repetition": repetition_reward, "gt": gt_reward,
            "agent": agent_reward}


# ----------------------------------------------------------------------------------------------
# A reward model

class RewardModel:
    """Scores (prompt messages, answer) with a reward model (.pth or folder); see the module docstring."""
    name = "reward_model"

    def __init__(self, path, device, tokenizer_path=None):
        if os.path.isfile(path):
            self._load_pth(path, device, tokenizer_path)
            return
        if not os.path.isdir(path):
            raise UserError(f"--reward_model_path {path}: no such folder or .pth file; pass train_reward.py's "
                            "reward_{dim}.pth or a reward model folder (scripts/convert_model.py exports one, or "
                            "MiniMind's internlm2-1_8b-reward), or leave the flag out for the rules alone")
        from transformers import AutoConfig, AutoTokenizer
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=True)
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path, trust_remote_code=True)
            archs = getattr(config, "architectures", None) or []
            if any(a.endswith("ForSequenceClassification") for a in archs):
                from transformers import AutoModelForSequenceClassification
                # MiniMind's own classes registered (an export --to minimind); others may be remote code
                importlib.import_module("model")
                self.model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)
                self.kind = "classifier"
            else:
                from transformers import AutoModel
                self.model = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=torch.float16
                                                       if torch.device(device).type == "cuda" else torch.float32)
                if not hasattr(self.model, "get_score"):
                    raise UserError(f"--reward_model_path {path}: expected a sequence-classification model or one "
                                    "with get_score (InternLM2's reward model), got "
                                    f"{type(self.model).__name__}; pass a reward model folder")
                self.kind = "get_score"
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"--reward_model_path {path}: could not load it ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]}); pass a reward model folder")
        self.model = self.model.to(device).eval()
        self.device = device

    def _load_pth(self, path, device, tokenizer_path):
        """train_reward.py's reward_{dim}.pth: its size from its tensors, the repo's tokenizer unless given."""
        from model.loading import tokenizer_for
        from model.reward import load_reward_pth
        try:
            self.model = load_reward_pth(path)
            self.tokenizer = tokenizer_for(self.model, tokenizer_path)
        except UserError as e:
            raise UserError(f"--reward_model_path {e}") from None
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model, self.kind, self.device = self.model.to(device).eval(), "classifier", device

    @torch.no_grad()
    def score(self, messages, answer, clip=True):
        """The reward of `answer` after `messages`, clipped to ±3 as MiniMind clips it (clip=False: the raw score)."""
        if self.kind == "get_score":
            # MiniMind's way: earlier turns folded into one user message, then the answer
            history = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1])
            last = messages[-1]["content"] if messages else ""
            query = f"{history}\n以上是对话历史。我的新问题是：\n{last}" if history else last
            s = self.model.get_score(self.tokenizer, [{"role": "user", "content": query},
                                                      {"role": "assistant", "content": answer}])
        else:
            text = self.tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}],
                                                      tokenize=False)
            enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
            s = self.model(**enc).logits[0, 0].item()
        return max(min(float(s), 3.0), -3.0) if clip else float(s)

    def __call__(self, prompts, completions, **kwargs):
        return [self.score(prompt_messages(p), answer_part(c)) for p, c in zip(prompts, completions)]


_TURN_RE = re.compile(r"<\|im_start\|>(system|user|assistant)\s+(.*?)<\|im_end\|>", re.S)


def prompt_messages(prompt):
    """The conversation back out of a ChatML prompt (as MiniMind reads it for its reward model)."""
    return [{"role": role, "content": content.strip()} for role, content in _TURN_RE.findall(prompt)]


# ----------------------------------------------------------------------------------------------
# The set a run uses

def load_user_function(spec):
    """"path/to/file.py:name" -> (name, function), one-line errors for a missing file or name."""
    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise UserError(f"--reward_funcs {spec}: expected a built-in ({', '.join(BUILTINS)}, reward_model) or "
                        "path/to/file.py:function_name")
    if not os.path.isfile(path):
        raise UserError(f"--reward_funcs {spec}: {path}: no such file; pass path/to/file.py:function_name")
    mod_name = "reward_" + re.sub(r"\W", "_", os.path.abspath(path))
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise UserError(f"--reward_funcs {spec}: importing {path} failed ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}); fix the file")
    fn = getattr(module, name, None)
    if not callable(fn):
        have = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise UserError(f"--reward_funcs {spec}: {path} has no function {name!r} (it has: {', '.join(have) or 'none'}); "
                        "pass path/to/file.py:function_name")
    return name, fn


def resolve_funcs(specs, reward_model=None):
    """--reward_funcs -> [(name, function)] (None when not given), user files imported here, once."""
    if not specs:
        return None
    funcs = []
    for spec in specs:
        if spec in BUILTINS:
            funcs.append((spec, BUILTINS[spec]))
        elif spec == "reward_model":
            if reward_model is None:
                raise UserError("--reward_funcs reward_model: needs --reward_model_path")
            funcs.append((spec, reward_model))
        else:
            funcs.append(load_user_function(spec))
    return funcs


def reward_set(funcs, reasoning, has_gt, reward_model=None):
    """[(name, function)]: resolve_funcs' list, or by default MiniMind's rules (format only for a
    reasoning run), the reward model when one is given, and gt when the data has it."""
    if funcs:
        return funcs
    funcs = [(n, BUILTINS[n]) for n in (("format",) if reasoning else ()) + ("length", "repetition")]
    if reward_model is not None:
        funcs.append(("reward_model", reward_model))
    if has_gt:
        funcs.append(("gt", BUILTINS["gt"]))
    return funcs


def score(funcs, prompts, completions, completion_ids, fields, step=None):
    """(N, K) rewards, NaN where a function returned None; one-line errors for a bad return value."""
    n = len(completions)
    out = torch.full((n, len(funcs)), float("nan"), dtype=torch.float64)
    keys = sorted({k for f in fields for k in f})
    extra = {k: [f.get(k) for f in fields] for k in keys if k not in ("prompts", "completions", "completion_ids")}
    where = f" at step {step}" if step is not None else ""
    for j, (name, fn) in enumerate(funcs):
        try:
            values = fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **extra)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"reward function {name}{where} raised {type(e).__name__}: {' '.join(str(e).split())[:160]} "
                            "(no weights were written for this step); fix the function")
        if not isinstance(values, (list, tuple)) or len(values) != n:
            got = f"{len(values)} values" if isinstance(values, (list, tuple)) else type(values).__name__
            raise UserError(f"reward function {name}{where}: expected a list of {n} floats (one per completion), "
                            f"got {got}; return one float (or None) per completion")
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise UserError(f"reward function {name}{where}: sample {i}: expected a float or None, got "
                                f"{type(v).__name__}; return one float (or None) per completion")
            if not math.isfinite(v):
                raise UserError(f"reward function {name}{where}: sample {i}: expected a finite reward, got {v}; "
                                "return one float (or None) per completion")
            out[i, j] = v
    return out
