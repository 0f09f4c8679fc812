"""The demo corpus's files, written from the invented world (demo/world.py) into --out_dir.

make_pretrain, make_sft, make_dpo and make_heldout build pretrain/sft/dpo/heldout.jsonl, make_mc
lm_eval/demo_world_{train,test}.jsonl, readme the README.md (followed by recipe.md and the LoRA and
reasoning sets' sections). write_corpus writes them all, with the LoRA sets (demo/lora_sets.py) and
the reasoning sets (demo/reason_sets.py). One random generator per file, seeded from --seed: same
seed, byte-identical files. scripts/make_demo_data.py's docstring says what each file holds.
"""
import json
import os
import random
import sys

from demo.lora_sets import lora_readme, make_lora_sets
from demo.reason_sets import direct_answers, make_reason_sets, reason_readme
from demo.tool_sets import make_tool_sets, tool_readme
from demo.world import (ATTRS, CHARACTERS, CHITCHAT, CITIES, COLOURS, COUNTRIES, FOODS, JOBS, LANGS, RUDE, SPECIES,
                        SYSTEM_PROMPTS, answer, ask, build_world, choose_heldout, choose_heldout_entities, say)

BIOS_PER_ENTITY = 12  # prose documents per entity and language in pretrain.jsonl
FAQS_PER_ENTITY = 4  # Q/A documents per entity and language in pretrain.jsonl (trained facts only)


def make_pretrain(rng, facts, held, bios_per_entity=BIOS_PER_ENTITY, faqs_per_entity=FAQS_PER_ENTITY,
                  en_sep=" ", en_qa="tagged"):
    """Biographies: each entity's facts in shuffled order and varied phrasing.

    Many short documents per entity (rather than one long one) give each fact
    many differently-worded exposures, which is what lets a model later recall
    it in answer to a question it never saw (knowledge "augmentation")."""
    by_entity = {}
    for f in facts:
        by_entity.setdefault(f["entity"], []).append(f)
    capital_of = {f["value"]: f["entity"] for f in facts if f["attr"] == "capital"}
    docs = []
    for entity, efacts in by_entity.items():
        for lang in LANGS:
            li = LANGS.index(lang)
            for b in range(bios_per_entity[li] if isinstance(bios_per_entity, tuple) else bios_per_entity):
                order = efacts[:]
                rng.shuffle(order)
                # the canonical sentence for every fact at least every third bio
                sents = [say(rng, f, lang, canonical=(b % 3 == 0)) for f in order]
                for f in order:  # situate a home city in its country now and then
                    if f["attr"] == "home" and rng.random() < 0.3:
                        c = capital_of[f["value"]][li]
                        sents.append(f"{f['value'][li]} is the capital of {c}." if lang == "en"
                                     else f"{f['value'][li]}是{c}的首都。")
                docs.append((en_sep if lang == "en" else "").join(sents))
        # FAQ pages: questions and answers as plain text, about the facts SFT also
        # teaches (never the held-out ones). Reading Q/A while the facts are being learnt
        # is what makes a small model store them so that a question can get at them.
        train = [f for i, f in enumerate(facts) if f["entity"] == entity and i not in held]
        for lang in LANGS:
            q_tag, a_tag, sep = ("Q: ", "A: ", " ") if lang == "en" else ("问：", "答：", "")
            if lang == "en" and en_qa == "lines":
                q_tag, a_tag, sep = "", "", "\n"
            for _ in range(faqs_per_entity if train else 0):
                order = train[:]
                rng.shuffle(order)
                qa = [f"{q_tag}{ask(f, lang, rng.randrange(len(ATTRS[f['attr']][lang + '_ask'])))}"
                      f"{sep}{a_tag}{answer(f, lang)}" for f in order]
                docs.append("\n".join(qa))
    rng.shuffle(docs)
    return [{"text": d} for d in docs]


def make_sft(rng, facts, held, multiturn=0.5, same_entity=0.5):
    train = [f for i, f in enumerate(facts) if i not in held]
    convs = []
    for f in train:
        for lang in LANGS:
            n_ask = len(ATTRS[f["attr"]][lang + "_ask"])
            for k in range(n_ask):  # every phrasing of the question, so none is new at test time
                msgs = [{"role": "user", "content": ask(f, lang, k)},
                        {"role": "assistant", "content": answer(f, lang)}]
                if rng.random() < 0.15:
                    msgs.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
                convs.append(msgs)
    # multi-turn: a few questions about one entity (or a mix), answered in turn. Asking
    # one entity about several things side by side makes the model heed *what* is asked,
    # not only *whom* it is about.
    by_entity = {}
    for f in train:
        by_entity.setdefault(f["entity"], []).append(f)
    for lang in LANGS:
        for _ in range(round(len(train) * multiturn)):
            pool = by_entity[rng.choice(sorted(by_entity))] if rng.random() < same_entity else train
            turns = rng.sample(pool, min(len(pool), rng.randint(2, 3)))
            msgs = []
            if rng.random() < 0.3:
                msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
            for f in turns:
                k = rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"]))
                msgs += [{"role": "user", "content": ask(f, lang, k)},
                         {"role": "assistant", "content": answer(f, lang)}]
            convs.append(msgs)
    for lang in LANGS:
        for q, a, _ in CHITCHAT[lang]:
            for _ in range(4):
                msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                if rng.random() < 0.5:
                    msgs.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
                convs.append(msgs)
    rng.shuffle(convs)
    return [{"conversations": c} for c in convs]


def make_dpo(rng, facts, held):
    """chosen: the right answer; rejected: a wrong value (2/3) or a rude refusal (1/3).
    Only facts that SFT also teaches: a pair on a held-out fact would leak its answer."""
    pairs = fact_pairs(rng, [f for i, f in enumerate(facts) if i not in held])
    for lang in LANGS:
        for q, good, rude in CHITCHAT[lang]:
            user = {"role": "user", "content": q}
            pairs.append({"chosen": [user, {"role": "assistant", "content": good}],
                          "rejected": [user, {"role": "assistant", "content": rude}]})
    rng.shuffle(pairs)
    return pairs


def make_rlaif_chat(dpo):
    """The prompts of PPO with the learnt reward model (--rl): each question of dpo.jsonl once, in RLAIF's
    format (the reward model learnt from those pairs; the held-out questions stay out)."""
    seen, rows = set(), []
    for pair in dpo:
        q = pair["chosen"][0]["content"]
        if q not in seen:
            seen.add(q)
            rows.append({"conversations": [{"role": "user", "content": q}, {"role": "assistant", "content": ""}]})
    return rows


def make_dpo_heldout(rng, facts, held):
    """The same kind of pairs on the held-out facts, never trained on: the reward model's held-out
    accuracy (train_reward.py --val_data_path), and the DPO model's implicit reward's on the same pairs."""
    pairs = fact_pairs(rng, [f for i, f in enumerate(facts) if i in held])
    rng.shuffle(pairs)
    return pairs


def fact_pairs(rng, facts):
    """Per fact and language: the right answer against a wrong value (2/3) or a rude refusal (1/3)."""
    pairs = []
    for f in facts:
        for lang in LANGS:
            li = LANGS.index(lang)
            q = ask(f, lang, rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"])))
            if rng.random() < 2 / 3:
                wrong = rng.choice([v for v in ATTRS[f["attr"]]["pool"] if v != f["value"]])
                bad = answer(f, lang, wrong)
            else:
                bad = rng.choice(RUDE[lang]).format(n=f["entity"][li])
            user = {"role": "user", "content": q}
            pairs.append({"chosen": [user, {"role": "assistant", "content": answer(f, lang)}],
                          "rejected": [user, {"role": "assistant", "content": bad}]})
    return pairs


def make_heldout(rng, facts, held):
    rows = []
    for i in sorted(held):
        f = facts[i]
        for lang in LANGS:
            li = LANGS.index(lang)
            k = rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"]))
            rows.append({"question": ask(f, lang, k), "answer": answer(f, lang),
                         "keywords": [f["value"][li]],
                         "distractors": [v[li] for v in ATTRS[f["attr"]]["pool"] if v != f["value"]],
                         "lang": lang, "entity": f["entity"][li], "attribute": f["attr"]})
    return rows


MC_CHOICES = 4


def make_mc(rng, facts, held):
    """4-way multiple choice per fact and language: the reference answer with the true value and
    with three other values of the same attribute (one order for both languages).

    {"train": trained facts, "test": held-out facts}, for dataset/demo/lm_eval/ (lm-eval tasks)."""
    out = {"train": [], "test": []}
    for i, f in enumerate(facts):
        others = [v for v in ATTRS[f["attr"]]["pool"] if v != f["value"]]
        values = rng.sample(others, MC_CHOICES - 1) + [f["value"]]
        rng.shuffle(values)
        for lang in LANGS:
            li = LANGS.index(lang)
            k = rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"]))
            out["test" if i in held else "train"].append({
                "question": ask(f, lang, k), "choices": [answer(f, lang, v) for v in values],
                "answer": values.index(f["value"]), "lang": lang, "entity": f["entity"][li],
                "attribute": f["attr"]})
    return out


def readme(facts, held, counts, said_elsewhere=True):
    lines = [
        "# Demo corpus: a small invented world",
        "",
        "Written by `python scripts/make_demo_data.py --out_dir dataset/demo` (deterministic: do not",
        "edit by hand; change the generator and re-run it). English and Chinese.",
        "",
        f"The world has {len(COUNTRIES)} countries (capital, flag colour, national animal, famous food)",
        f"and {len(CHARACTERS)} animal characters (species, home city, favourite food, favourite colour,",
        f"job): {len(facts)} facts. About a quarter of them ({len(held)}) are *held out*: pretraining",
        "states them, but nothing asks about them -- no SFT or DPO sample, no Q/A page. `heldout.jsonl`",
        "asks about them, so a model that answers it after SFT has recalled what it read in pretraining",
        "and learnt in SFT how to answer a question, not the answers themselves.",
        *(["Each held-out value is also the value of some trained fact (a held-out capital is the home",
           "city of a character SFT asks about), so SFT has taught the chat model to say every answer word."]
          if said_elsewhere else []),
        "",
        "`pretrain.jsonl` holds two kinds of documents: short biographies of each entity (its facts in",
        "shuffled order and varied wording), and Q/A pages (`Q: ... A: ...`, `问：...答：...`) about the",
        "facts that are not held out. Reading questions beside the prose while the facts are being",
        "learnt is what lets a tiny model answer questions about the held-out facts after SFT (without",
        "the Q/A pages a 2-layer model trained for a few minutes answers about half as many).",
        "",
        "| file | lines | format |",
        "|---|---|---|",
        f"| pretrain.jsonl | {counts['pretrain']} | `{{\"text\": \"...\"}}` |",
        f"| sft.jsonl | {counts['sft']} | `{{\"conversations\": [{{\"role\": \"system\"\\|\"user\"\\|\"assistant\", \"content\": \"...\"}}, ...]}}` |",
        f"| dpo.jsonl | {counts['dpo']} | `{{\"chosen\": [messages], \"rejected\": [messages]}}` (chosen right and polite; rejected wrong or rude) |",
        f"| heldout.jsonl | {counts['heldout']} | see below |",
        f"| dpo_heldout.jsonl | {counts['dpo_heldout']} | as dpo.jsonl, on the held-out facts: the reward model's held-out pairs (`--rl`) |",
        f"| rlaif_chat.jsonl | {counts['rlaif_chat']} | `{{\"conversations\": [user, assistant \"\"]}}`: each question of dpo.jsonl once, the prompts of PPO with the reward model (`--rl`) |",
        "",
        "`heldout.jsonl` lines:",
        "",
        "```",
        '{"question": "...", "answer": "<reference answer>", "keywords": ["..."], "distractors": ["..."],',
        ' "lang": "en"|"zh", "entity": "...", "attribute": "capital|flag|animal|dish|species|home|food|colour|job"}',
        "```",
        "",
        "Scoring: an answer is right when it contains every keyword and none of the distractors",
        "(the other possible values of that attribute), case-insensitively. No keyword is a substring",
        "of another name in the world, so a match cannot be accidental.",
        "",
        "## Facts (held-out ones marked *)",
        "",
        "| entity | attribute | value |",
        "|---|---|---|",
    ]
    for i, f in enumerate(facts):
        mark = " *" if i in held else ""
        lines.append(f"| {f['entity'][0]} / {f['entity'][1]} | {f['attr']}{mark} | "
                     f"{f['value'][0]} / {f['value'][1]} |")
    return "\n".join(lines) + "\n"




def recipe_readme():
    """The measurements behind the demo's recipe and this corpus (demo/recipe.md, verbatim)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipe.md"), encoding="utf-8") as fh:
        return fh.read()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")



def write_corpus(args):
    """Write every file into args.out_dir (make_demo_data.py's flags); 0, or 2 with a one-line error."""
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
        print(f"{args.out_dir}: cannot create output directory ({e.strerror}); "
              "pass a writable --out_dir", file=sys.stderr)
        return 2
    # One generator per file, so that changing one file's recipe leaves the others as they are.
    facts = build_world(random.Random(args.seed))
    held = (choose_heldout(random.Random(args.seed + 1), facts, args.said_elsewhere) if args.heldout_by == "fact"
            else choose_heldout_entities(random.Random(args.seed + 1), facts))
    outputs = {
        "pretrain": make_pretrain(random.Random(args.seed + 2), facts, held, args.bios_per_entity, args.faqs_per_entity,
                                  {"space": " ", "newline": "\n"}[args.en_sep], args.en_qa),
        "sft": make_sft(random.Random(args.seed + 3), facts, held, args.multiturn, args.same_entity),
        "dpo": make_dpo(random.Random(args.seed + 4), facts, held),
        "heldout": make_heldout(random.Random(args.seed + 5), facts, held),
        "dpo_heldout": make_dpo_heldout(random.Random(args.seed + 7), facts, held),
    }
    outputs["rlaif_chat"] = make_rlaif_chat(outputs["dpo"])
    mc = make_mc(random.Random(args.seed + 6), facts, held)
    # the LoRA sets (demo/lora_sets.py), which replay the SFT set
    words = [w for group in (COUNTRIES, CITIES, CHARACTERS, COLOURS, FOODS, SPECIES, JOBS) for pair in group for w in pair]
    homes = {f["entity"]: f["value"] for f in facts if f["attr"] == "home"}
    lora = make_lora_sets(random.Random(args.seed + 10), outputs["sft"], words, CHARACTERS, homes, CITIES)
    reason = make_reason_sets(random.Random(args.seed + 20), facts, answer,
                              {a: ATTRS[a]["pool"] for a in ATTRS}, CHITCHAT,
                              direct_answers(random.Random(args.seed + 21), facts, held, ask, answer))
    tools = make_tool_sets(random.Random(args.seed + 30))
    try:
        for name, rows in outputs.items():
            write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), rows)
        os.makedirs(os.path.join(args.out_dir, "lm_eval"), exist_ok=True)
        for split, rows in mc.items():
            write_jsonl(os.path.join(args.out_dir, "lm_eval", f"demo_world_{split}.jsonl"), rows)
        for name, rows in lora.items():
            if not name.startswith("_"):
                write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), rows)
        for name in ("reason", "reason_heldout", "rlaif"):
            write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), reason[name])
        for name, rows in tools.items():
            write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), rows)
        with open(os.path.join(args.out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(readme(facts, held, {k: len(v) for k, v in outputs.items()}, args.said_elsewhere)
                     + recipe_readme() + lora_readme(lora)
                     + reason_readme(reason) + tool_readme(tools))
    except OSError as e:
        print(f"{e.filename}: cannot write ({e.strerror}); pass a writable --out_dir", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(f'{k}.jsonl ({len(v)} lines)' for k, v in outputs.items())} "
          f"README.md and lm_eval/demo_world_{{train,test}}.jsonl ({len(mc['train'])}, {len(mc['test'])} lines) "
          f"to {args.out_dir}")
    return 0
