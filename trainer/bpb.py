"""Bits per byte: validation loss that does not depend on the tokenizer (nanochat's val/bpb).

    bpb = (summed target cross-entropy in nats) / ln 2 / (UTF-8 bytes of the target text)

A tokenizer with longer tokens has a higher loss per token but fewer tokens for the same text;
per byte of text the two runs compare. The byte count of the targets is a sum over a per-token-id
table: for a byte-level BPE (MiniMind's tokenizer) each token is an exact byte string, so the table
summed over any run of ids equals the byte length of that run decoded. Special tokens
(<|im_start|>, <|im_end|>, <|endoftext|>) are markup, not text: they count 0 bytes, and their
cross-entropy is left out of the sum too (as nanochat does), so bpb measures the text alone.
"""
import json
import math

import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte <-> character table


def token_byte_lengths(tokenizer) -> torch.Tensor:
    """(len(tokenizer),) int64: UTF-8 bytes each token id stands for; 0 for special tokens."""
    n = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    special |= {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = (json.loads(backend.to_str()).get("decoder") or {}) if backend is not None else {}
    table = torch.zeros(n, dtype=torch.int64)
    if decoder.get("type") == "ByteLevel":
        to_byte = {c: b for b, c in bytes_to_unicode().items()}
        for i, tok in enumerate(tokenizer.convert_ids_to_tokens(list(range(n)))):
            if i in special or tok is None:
                continue
            added = tokenizer.added_tokens_decoder.get(i)
            # added (non-special) tokens are stored as plain text, vocabulary tokens byte-mapped
            table[i] = len(added.content.encode("utf-8")) if added is not None else sum(
                1 if ch in to_byte else len(ch.encode("utf-8")) for ch in tok)
    else:
        # other decoders (SentencePiece, WordPiece): one token decoded alone; a token holding part of
        # a UTF-8 character is approximate here
        for i in range(n):
            if i not in special:
                table[i] = len(tokenizer.decode([i]).encode("utf-8"))
    return table


def bits_per_byte(ce_nats: float, n_bytes: float) -> float:
    return ce_nats / math.log(2) / max(n_bytes, 1.0)
