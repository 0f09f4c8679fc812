"""Generating from a model: one answer streamed as text, or a batch returned as ids and log-probs.

Both go through transformers' model.generate() (KV cache, temperature / top-p sampling, EOS):

    sampling_kwargs(temperature, top_p)     generate()'s sampling arguments (0 = greedy)
    stream_text(model, tokenizer, kw)       yields the answer's text piece by piece from a worker
                                            thread; a character is never cut in half, and leaving the
                                            loop early (a client gone, Ctrl-C) stops generate()
    generate_batch(model, tokenizer, prompts, ...)
                                            many prompts at once (left-padded): completion ids, mask,
                                            each token's log-prob under the model, texts, why it ended
    StopStrings / held_back / cut_at_stop   stop sequences, checked on the newest tokens only

Chat front ends (model/chat.py, the server, the page) stream; the RL stages roll out with
generate_batch and score the log-probs they need.
"""
import threading
from dataclasses import dataclass

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
from transformers.cache_utils import DynamicCache


def sampling_kwargs(temperature, top_p, top_k=None):
    """generate()'s sampling arguments: greedy for temperature 0 (or top_p 0), else sampled."""
    if temperature <= 0 or top_p <= 0:
        return dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    kw = dict(do_sample=True, temperature=temperature, top_p=top_p)
    if top_k is not None:
        kw["top_k"] = top_k
    return kw


class StopOnEvent(StoppingCriteria):
    """Ends generate() once the event is set (the reader went away, or Ctrl-C)."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class StopStrings(StoppingCriteria):
    """Ends generate() when `cancel` is set or any row has produced one of the stop strings.

    Only the newest tokens are decoded each step: enough of them to hold any stop string.
    `hit_stop` tells afterwards whether a stop string (not the cancel) ended it.
    """

    def __init__(self, stops, tokenizer, prompt_len, cancel=None):
        self.stops, self.tokenizer, self.prompt_len = list(stops), tokenizer, prompt_len
        self.cancel = cancel or threading.Event()
        self.tail = 4 * max((len(s) for s in self.stops), default=0) + 4  # a character is <= 4 byte tokens
        self.hit_stop = False

    def __call__(self, input_ids, scores, **kwargs):
        done = torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)
        if self.stops and not self.cancel.is_set():
            start = max(self.prompt_len, input_ids.shape[1] - self.tail)
            for row, text in enumerate(self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)):
                if any(s in text for s in self.stops):
                    self.hit_stop = True
                    done[row] = True
        return done


def held_back(text, stops):
    """How many trailing characters of `text` could still grow into a stop string (not sent yet)."""
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:k]):
                keep = k
                break
    return keep


def cut_at_stop(text, stops):
    """(text before the earliest stop string, whether one was found)."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


class AnswerStreamer(TextIteratorStreamer):
    """TextIteratorStreamer that also drops a character cut in half by max_new_tokens.

    The base class already holds back a partial character until its last byte arrives; only
    the final flush would print one as a replacement character.
    """

    def on_finalized_text(self, text, stream_end=False):
        super().on_finalized_text(text.rstrip("\ufffd") if stream_end else text, stream_end)


def stream_text(model, tokenizer, kw, criteria=()):
    """Yields the text of one generate(**kw) as it is produced (prompt and special tokens left out).

    generate() runs in a daemon thread (a Ctrl-C must not wait for a long answer to finish); when the
    caller stops iterating, or an exception reaches it, the thread is told to stop. An exception in
    generate() is re-raised here.
    """
    streamer = AnswerStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop = threading.Event()
    failure = []

    def work():
        try:
            with torch.inference_mode():
                model.generate(**kw, streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([StopOnEvent(stop), *criteria]))
        except BaseException as e:  # re-raised in the reader, which would otherwise wait forever
            failure.append(e)
            streamer.end()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        yield from streamer
    finally:
        stop.set()
        worker.join(timeout=5)
    if failure:
        raise failure[0]


@dataclass
class Generation:
    """What generate_batch returns, one row per prompt (B rows), completions right-padded.

    prompt_ids / prompt_mask      (B, P) the prompts as fed, left-padded, 1 = token
    completion_ids                (B, C) the generated tokens; after a row's end, pad_token_id
    completion_mask               (B, C) 1 for the tokens a row generated, its EOS included
    logprobs                      (B, C) each generated token's log-probability under the model's
                                  own distribution (its logits, before temperature or top-p), 0 past
                                  the end; None unless asked for
    texts                         the completions decoded without special tokens
    finish_reasons                "stop" (EOS or a stop string) or "length" per row
    """
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    logprobs: torch.Tensor | None
    texts: list
    finish_reasons: list


def generate_batch(model, tokenizer, prompts, max_new_tokens, temperature=1.0, top_p=1.0, stop=(),
                   return_logprobs=False, num_return_sequences=1):
    """Generate for many prompts at once; see Generation. `prompts` are strings (already templated)
    or lists of token ids. Each prompt's rows come out together (num_return_sequences per prompt)."""
    device = next(model.parameters()).device
    if prompts and isinstance(prompts[0], str):
        rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    else:
        rows = [list(p) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(r) for r in rows)
    prompt_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long, device=device)
    prompt_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=device)
    stops = StopStrings(stop, tokenizer, width) if stop else None
    kw = dict(input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens, use_cache=True,
              pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, num_return_sequences=num_return_sequences,
              return_dict_in_generate=True, output_logits=return_logprobs,
              **sampling_kwargs(temperature, top_p, top_k=0 if temperature > 0 and top_p > 0 else None))
    if stops is not None:
        kw["stopping_criteria"] = StoppingCriteriaList([stops])
    with torch.inference_mode():
        if num_return_sequences > 1:
            once_ids, once_mask = prompt_ids, prompt_mask  # one row per prompt
            prompt_ids = prompt_ids.repeat_interleave(num_return_sequences, dim=0)
            prompt_mask = prompt_mask.repeat_interleave(num_return_sequences, dim=0)
            if width > 1:
                # generate() would run each prompt n times; run it once (all but its last token, which
                # generate() then feeds) and give every row a copy of its keys and values
                cache = DynamicCache(config=model.config)
                model(once_ids[:, :-1], attention_mask=once_mask[:, :-1], past_key_values=cache, use_cache=True,
                      logits_to_keep=1)
                cache.batch_repeat_interleave(num_return_sequences)
                kw.update(input_ids=prompt_ids, attention_mask=prompt_mask, cache=cache, num_return_sequences=1)
        out = model.generate(**kw)
    completion = out.sequences[:, width:]
    eos = tokenizer.eos_token_id
    # a row ends at its first EOS (kept); generate() pads the rows that finished earlier than the rest
    is_eos = completion == eos
    first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1), completion.shape[1])
    positions = torch.arange(completion.shape[1], device=completion.device)[None]
    mask = (positions <= first_eos[:, None]).long()
    texts, reasons = [], []
    for row, ids in enumerate(completion):
        n = int(mask[row].sum())
        text = tokenizer.decode(ids[:n], skip_special_tokens=True)
        ended = bool(is_eos[row].any())
        if stop:
            text, hit = cut_at_stop(text, stop)
            if hit:  # the row ends with the token that completed the stop string
                n = next(k for k in range(1, n + 1)
                         if cut_at_stop(tokenizer.decode(ids[:k], skip_special_tokens=True), stop)[1])
                mask[row, n:] = 0
            ended = ended or hit
        texts.append(text)
        reasons.append("stop" if ended else "length")
    logprobs = None
    if return_logprobs:
        logits = torch.stack(out.logits, dim=1).float()  # (B, C, V): the raw logits of each step
        logprobs = torch.log_softmax(logits, -1).gather(-1, completion[..., None]).squeeze(-1) * mask
    completion = torch.where(mask.bool(), completion, torch.full_like(completion, pad))
    return Generation(prompt_ids, prompt_mask, completion, mask, logprobs, texts, reasons)
