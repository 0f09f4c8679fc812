"""Bits per byte: validation loss that does not depend on the tokenizer (nanochat's val/bpb).

    bpb = (summed target cross-entropy in nats) / ln 2 / (UTF-8 bytes of the target text)

A tokenizer with longer tokens has a higher loss per token but fewer tokens for the same text;
per byte of text the two runs compare. The byte count of the targets is a sum over a per-token-id
table: for a byte-level BPE (MiniMind's tokenizer) each token is an exact byte string, so the table
summed over any run of ids equals the byte length of that run decoded. Special tokens
(<|im_start|>, <|im_end|>, <|endoftext|>) are markup, not text: they count 0 bytes, and their
cross-entropy is left out of the sum too (as nanochat does), so bpb measures the text alone.
"""
import math

import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte <-> character table


def token_bytes_table(tokenizer):
    """[bytes of token id i]: exact for byte-level BPE (ours, MiniMind's, GPT-2's); other tokenizers
    get each token decoded alone (exact unless a token holds part of a UTF-8 character)."""
    n = len(tokenizer)
    added = {i: t.content for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.decoder).__name__ != "ByteLevel":
        return [added[i].encode("utf-8") if i in added else tokenizer.decode([i]).encode("utf-8") for i in range(n)]
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    table = [b""] * n
    for i, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(n)))):
        if i in added:  # added tokens are stored as plain text, vocabulary tokens byte-mapped
            table[i] = added[i].encode("utf-8")
        elif piece is not None:
            table[i] = b"".join(bytes([to_byte[c]]) if c in to_byte else c.encode("utf-8") for c in piece)
    return table


def token_byte_lengths(tokenizer) -> torch.Tensor:
    """(len(tokenizer),) int64: UTF-8 bytes each token id stands for; 0 for special tokens."""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return torch.tensor([0 if i in special else len(b) for i, b in enumerate(token_bytes_table(tokenizer))],
                        dtype=torch.int64)


def bits_per_byte(ce_nats: float, n_bytes: float) -> float:
    return ce_nats / math.log(2) / max(n_bytes, 1.0)
