"""Write the bundled demo corpus: a small invented world, in English and Chinese.

    python scripts/make_demo_data.py --out_dir dataset/demo

The world is a handful of invented countries and animal characters, each with a
few attributes (a country's capital and flag colour; a character's species,
home city, favourite food, favourite colour and job). From it we write, in
MiniMind's JSONL formats:

  pretrain.jsonl  {"text": ...}              every fact in varied prose, plus Q/A pages
                                             about the facts that are not held out
  sft.jsonl       {"conversations": [...]}   Q/A about the facts that are not held out
  dpo.jsonl       {"chosen": [...], "rejected": [...]}  right/polite vs wrong/rude
  heldout.jsonl   questions whose facts are only in pretrain.jsonl, with answer keywords
  README.md       the world and the formats
  lora_{identity,domain}[_heldout].jsonl  the LoRA sets (demo/lora_sets.py): a new identity,
                  facts no other stage saw, and phrasings of their questions the sets never use
  reason.jsonl, reason_heldout.jsonl  2-hop questions in DeepSeek-R1's <think>/<answer> format, and
                  held-out ones (demo/reason_sets.py)
  lm_eval/demo_world_{train,test}.jsonl  4-way multiple choice about every fact (test: the held-out
                  ones), read by the lm-evaluation-harness tasks in dataset/demo/lm_eval/

About a quarter of the facts are held out: pretraining states them, but no SFT
or DPO sample and no Q/A page asks about them (in either language). A model that answers the
held-out questions after SFT has learnt the facts in pretraining and learnt in
SFT how to answer questions about them -- that is what the demo checks.

Output is a pure function of --seed: same seed, byte-identical files. The world and its sentences
are demo/world.py and demo/world.md; the files are written by demo/corpus.py.
"""
import argparse
import os
import sys

# the repository root first, so that `demo` is its package and not this file's neighbour scripts/demo.py
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from demo.corpus import BIOS_PER_ENTITY, FAQS_PER_ENTITY, write_corpus  # noqa: E402
from demo.world import SEED  # noqa: E402


def bios_count(v):
    """--bios_per_entity: N, or EN,ZH."""
    parts = [int(x) for x in v.split(",")]
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or EN,ZH (positive integers), got {v!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="dataset/demo", help="where to write the files")
    p.add_argument("--seed", type=int, default=SEED, help="the bundled files use the default")
    g = p.add_argument_group("experiments", "other corpora, as tried in dataset/demo/README.md's table of the "
                             "recipe (the defaults write the bundled files)")
    g.add_argument("--heldout_by", choices=("fact", "entity"), default="fact",
                   help="hold out a quarter of each attribute's facts, or every fact of a quarter of the entities")
    g.add_argument("--said_elsewhere", type=int, choices=(1, 0), default=1,
                   help="hold out only facts whose value a trained fact has too (default %(default)s)")
    g.add_argument("--multiturn", type=float, default=0.5,
                   help="multi-turn SFT conversations per language, as a share of the trained facts (default %(default)s)")
    g.add_argument("--same_entity", type=float, default=0.5,
                   help="share of them that ask about one entity only (default %(default)s)")
    g.add_argument("--en_sep", choices=("space", "newline"), default="space",
                   help="what joins the sentences of an English biography (default %(default)s)")
    g.add_argument("--en_qa", choices=("tagged", "lines"), default="tagged",
                   help="English Q/A pages as 'Q: ... A: ...' or as bare question and answer lines")
    g.add_argument("--bios_per_entity", type=bios_count, default=BIOS_PER_ENTITY,
                   help="prose documents per entity and language in pretrain.jsonl, or EN,ZH for the two "
                        "languages apart (default %(default)s)")
    g.add_argument("--faqs_per_entity", type=int, default=FAQS_PER_ENTITY,
                   help="Q/A pages per entity and language in pretrain.jsonl (default %(default)s)")
    return write_corpus(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
